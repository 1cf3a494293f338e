package admin_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/switchyard-dev/switchyard/internal/admin"
	"github.com/switchyard-dev/switchyard/internal/telemetry"
)

func start(t *testing.T, opt admin.Options) (*admin.Server, *bytes.Buffer) {
	t.Helper()
	if opt.Metrics == nil {
		opt.Metrics = telemetry.New()
	}
	var buf bytes.Buffer
	s, err := admin.Start(opt, slog.New(slog.NewTextHandler(&buf, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	return s, &buf
}

func get(t *testing.T, s *admin.Server, path string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + s.Addr() + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestServer_endpoints(t *testing.T) {
	m := telemetry.New()
	m.Consumed.WithLabelValues("bids").Add(3)
	var ready atomic.Bool
	var mu sync.Mutex
	var stalled []string
	s, _ := start(t, admin.Options{Address: "127.0.0.1:0", Metrics: m, Ready: ready.Load, Stalled: func() []string {
		mu.Lock()
		defer mu.Unlock()
		return stalled
	}})
	if code, _ := get(t, s, "/healthz"); code != 200 {
		t.Fatalf("/healthz: %d", code)
	}
	if code, _ := get(t, s, "/readyz"); code != 503 {
		t.Fatalf("/readyz before ready: %d, want 503", code)
	}
	ready.Store(true)
	if code, _ := get(t, s, "/readyz"); code != 200 {
		t.Fatalf("/readyz when ready: %d", code)
	}
	mu.Lock()
	stalled = []string{"pipeline bids sink olap: bids/3 stalled for 2m0s at offset 10, 787 records behind"}
	mu.Unlock()
	if code, body := get(t, s, "/readyz"); code != 503 || !strings.Contains(body, "1 stalled partitions") || !strings.Contains(body, "bids/3 stalled") {
		t.Fatalf("/readyz with a stalled partition: %d %q, want 503 listing it", code, body)
	}
	code, body := get(t, s, "/metrics")
	if code != 200 || !strings.Contains(body, `switchyard_events_consumed_total{pipeline="bids"} 3`) || !strings.Contains(body, "go_goroutines") {
		t.Fatalf("/metrics: %d\n%s", code, body)
	}
}

func TestServer_pprof_only_when_enabled(t *testing.T) {
	for _, tc := range []struct {
		pprof bool
		code  int
	}{{false, 404}, {true, 200}} {
		s, _ := start(t, admin.Options{Address: "127.0.0.1:0", PProf: tc.pprof})
		for _, path := range []string{"/debug/pprof/", "/debug/pprof/goroutine?debug=1", "/debug/pprof/cmdline"} {
			if code, _ := get(t, s, path); code != tc.code {
				t.Errorf("pprof %v: GET %s = %d, want %d", tc.pprof, path, code, tc.code)
			}
		}
	}
}

func TestServer_warns_on_a_non_loopback_address(t *testing.T) {
	for _, tc := range []struct {
		addr string
		warn bool
	}{
		{"127.0.0.1:0", false},
		{"localhost:0", false},
		{"[::1]:0", false},
		{"0.0.0.0:0", true},
		{":0", true},
	} {
		_, log := start(t, admin.Options{Address: tc.addr})
		got := strings.Contains(log.String(), "level=WARN") && strings.Contains(log.String(), "non-loopback")
		if got != tc.warn {
			t.Errorf("address %s: warned %v, want %v; log: %s", tc.addr, got, tc.warn, log)
		}
	}
}
