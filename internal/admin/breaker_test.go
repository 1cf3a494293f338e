package admin_test

import (
	"encoding/json"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard-dev/switchyard/internal/admin"
	"github.com/switchyard-dev/switchyard/internal/status"
)

func TestServer_tripped_breaker_on_readyz_api_and_page(t *testing.T) {
	tripped := []string{"pipeline bids: dead-letter breaker tripped 12s ago, probe in 4m48s: 100% of 1000 events dead-lettered over 1m0s in sink lane olap (max 50%); top reasons validate=1000; e.g. validate bids/0@17"}
	rep := func() *status.Report {
		r := report()
		at, probe := r.GeneratedAt.Add(-12*time.Second), r.GeneratedAt.Add(4*time.Minute+48*time.Second)
		r.Pipelines[0].Sinks[0].State = status.Landing // only the breaker is wrong
		r.Pipelines[0].Breaker = &status.Breaker{State: status.BreakerTripped, Trips: 2, TrippedAt: &at, ProbeAt: &probe,
			Reason:   "100% of 1000 events dead-lettered over 1m0s in sink lane olap (max 50%); top reasons validate=1000; e.g. validate bids/0@17",
			MaxRatio: 0.5, Window: "1m0s", MinEvents: 1000, Cooldown: "5m0s"}
		status.Grade(r)
		return r
	}
	var closed atomic.Bool
	s, _ := start(t, admin.Options{Address: "127.0.0.1:0", Tripped: func() []string {
		if closed.Load() {
			return nil
		}
		return tripped
	}, Status: rep})
	code, body := get(t, s, "/readyz")
	if code != 503 || !strings.Contains(body, "1 pipelines with a tripped dead-letter breaker") || !strings.Contains(body, tripped[0]) {
		t.Fatalf("/readyz with a tripped breaker: %d %q", code, body)
	}
	_, body = get(t, s, "/api/status")
	var got struct {
		Pipelines []struct {
			Level   string
			Breaker struct {
				State  string
				Trips  int
				Reason string
			}
		}
	}
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatal(err)
	}
	if p := got.Pipelines[0]; p.Level != "red" || p.Breaker.State != "tripped" || p.Breaker.Trips != 2 || !strings.Contains(p.Breaker.Reason, "validate=1000") {
		t.Fatalf("/api/status pipeline: %+v, want red with the tripped breaker", p)
	}
	_, page := get(t, s, "/")
	if !strings.Contains(page, `data-breaker="tripped">dead-letter breaker tripped: 100% of 1000 events dead-lettered`) || !strings.Contains(page, "tripped 12s ago, probe at 01:04:48 UTC") {
		t.Fatalf("status page lacks the tripped breaker:\n%s", page)
	}

	closed.Store(true)
	if code, _ := get(t, s, "/readyz"); code != 200 {
		t.Fatalf("/readyz with the breaker closed: %d", code)
	}
}
