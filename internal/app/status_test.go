package app

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-dev/switchyard/internal/status"
)

func TestStatus_once_and_json(t *testing.T) {
	now := time.Now().UTC()
	r := &status.Report{Version: status.Version, GeneratedAt: now, Pipelines: []status.Pipeline{{
		Name: "bids", Team: "auctions", Contact: "#auctions",
		Contracts: []status.Contract{{Name: "auctions.v1.BidPlaced", Hash: "0123456789ab"}},
		Breaker:   &status.Breaker{State: status.BreakerTripped, Reason: "100% of 1000 events dead-lettered over 1m0s in sink lane olap (max 50%)"},
		Sinks: []status.Sink{
			{Name: "olap", Kind: "clickhouse", State: status.Retrying, Error: "connection refused",
				Partitions: []status.Partition{{Topic: "bids", LagRecords: 7, LagSeconds: 2.5}}},
			{Name: "bus", Kind: "kafka", State: status.Landing, LastLanded: &now},
		},
	}}}
	status.Grade(r)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path != "/api/status" {
			http.NotFound(w, req)
			return
		}
		_ = json.NewEncoder(w).Encode(r)
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")

	var out, errOut bytes.Buffer
	if code := Main(context.Background(), []string{"status", "--admin", addr, "--once"}, &out, &errOut); code != 1 {
		t.Fatalf("exit %d for a red status, want 1; stderr: %s", code, errOut.String())
	}
	for _, want := range []string{"switchyard RED", "RED   bids  owner auctions (#auctions)  auctions.v1.BidPlaced@0123456789ab",
		"RED   olap (clickhouse) retrying, lag 7 records / 2.5s", "error: connection refused", "GREEN bus (kafka) landing",
		"dead-letter breaker TRIPPED: 100% of 1000 events dead-lettered over 1m0s in sink lane olap (max 50%)"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("status --once lacks %q:\n%s", want, out.String())
		}
	}
	out.Reset()
	if code := Main(context.Background(), []string{"status", "--admin", srv.URL, "--json"}, &out, &errOut); code != 0 {
		t.Fatalf("status --json: exit %d", code)
	}
	var got status.Report
	if err := json.Unmarshal(out.Bytes(), &got); err != nil || got.Version != 1 || got.Overall != status.Red {
		t.Fatalf("status --json: %v %+v", err, got)
	}
	if code := Main(context.Background(), []string{"status", "--admin", "127.0.0.1:1", "--once"}, &out, &errOut); code != 2 {
		t.Fatalf("status of an unreachable daemon: exit %d, want 2", code)
	}
}
