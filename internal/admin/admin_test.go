package admin_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"switchyard/internal/admin"
	"switchyard/internal/telemetry"
)

func TestServer_endpoints(t *testing.T) {
	m := telemetry.New()
	m.Consumed.WithLabelValues("bids").Add(3)
	var ready atomic.Bool
	s, err := admin.Start("127.0.0.1:0", m, ready.Load, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + s.Addr() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get("/healthz"); code != 200 {
		t.Fatalf("/healthz: %d", code)
	}
	if code, _ := get("/readyz"); code != 503 {
		t.Fatalf("/readyz before ready: %d, want 503", code)
	}
	ready.Store(true)
	if code, _ := get("/readyz"); code != 200 {
		t.Fatalf("/readyz when ready: %d", code)
	}
	code, body := get("/metrics")
	if code != 200 || !strings.Contains(body, `switchyard_events_consumed_total{pipeline="bids"} 3`) || !strings.Contains(body, "go_goroutines") {
		t.Fatalf("/metrics: %d\n%s", code, body)
	}
}
