package admin_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-dev/switchyard/internal/admin"
	"github.com/switchyard-dev/switchyard/internal/status"
)

func report() *status.Report {
	now := time.Date(2026, 12, 2, 1, 0, 0, 0, time.UTC)
	one := 1.0
	r := &status.Report{Version: status.Version, GeneratedAt: now, Pipelines: []status.Pipeline{{
		Name: "bids", Team: "auctions", Contact: "#auctions",
		Contracts:     []status.Contract{{Name: "auctions.v1.BidPlaced", Hash: "0123456789ab"}},
		DeadLetters5m: map[string]int64{},
		Sinks: []status.Sink{
			{Name: "olap", Kind: "clickhouse", State: status.Retrying, Error: "dial tcp 127.0.0.1:9000: connection refused",
				Partitions: []status.Partition{{Topic: "bids", Partition: 0, LagRecords: 12, LagSeconds: 3.5}}},
			{Name: "bus", Kind: "kafka", State: status.Landing, LastLanded: &now,
				SLOs: []status.SLO{{Name: "freshness", Objective: 0.99, Current: &one, BudgetRemaining: 1, BurnRates: map[string]float64{"5m": 0}}}},
		},
	}}}
	status.Grade(r)
	return r
}

func TestServer_status_json_and_page(t *testing.T) {
	s, _ := start(t, admin.Options{Address: "127.0.0.1:0", Status: report})
	code, body := get(t, s, "/api/status")
	if code != 200 {
		t.Fatalf("/api/status: %d", code)
	}
	var got struct {
		Version   int
		Overall   string
		Pipelines []struct {
			Name  string
			Sinks []struct{ Name, Level, State, Error string }
		}
	}
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatalf("/api/status is not JSON: %v\n%s", err, body)
	}
	if got.Version != 1 || got.Overall != "red" || len(got.Pipelines) != 1 || len(got.Pipelines[0].Sinks) != 2 {
		t.Fatalf("/api/status: %+v", got)
	}
	if olap := got.Pipelines[0].Sinks[0]; olap.Level != "red" || olap.State != "retrying" || !strings.Contains(olap.Error, "connection refused") {
		t.Errorf("olap: %+v, want red, retrying, with its error", olap)
	}
	if bus := got.Pipelines[0].Sinks[1]; bus.Level != "green" {
		t.Errorf("bus: %+v, want green", bus)
	}

	code, page := get(t, s, "/")
	if code != 200 {
		t.Fatalf("/: %d", code)
	}
	for _, want := range []string{
		`<meta name="viewport"`, `<meta http-equiv="refresh" content="5">`,
		`id="overall">red<`, `id="p-bids"`, `id="sink-olap" data-level="red"`, `id="sink-bus" data-level="green"`,
		"dial tcp 127.0.0.1:9000: connection refused", "auctions.v1.BidPlaced <code>0123456789ab</code>", "owner auctions (#auctions)",
		"<td>bids/0</td><td>12</td><td>3.5s</td>",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("status page lacks %q:\n%s", want, page)
		}
	}
	if strings.Contains(page, "<script") {
		t.Error("status page has a script")
	}
	// /status, where operators look first, leads to the page.
	if code, body := get(t, s, "/status"); code != 200 || !strings.Contains(body, `id="overall">red<`) {
		t.Errorf("/status: %d, want the status page", code)
	}
	if code, _ := get(t, s, "/nope"); code != 404 {
		t.Errorf("/nope: %d, want 404", code)
	}
	// Nothing on the admin server changes state.
	for _, path := range []string{"/", "/api/status"} {
		resp, err := http.Post("http://"+s.Addr()+path, "application/json", strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("POST %s: %d, want 405", path, resp.StatusCode)
		}
	}
}
