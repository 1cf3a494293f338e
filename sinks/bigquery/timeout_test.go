package bigquery

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-dev/switchyard/sinks"
	"github.com/switchyard-dev/switchyard/sinks/sinktest"
)

// TestSink_retries_on_timeout: the server accepts the connection and the appends but stops
// answering. Write returns a transient error naming the timeout within about the timeout,
// again on the next attempt (which, for exactly_once, must settle the unanswered append
// first), and once the server answers again a retry lands every record exactly once — also
// in exactly_once mode, where the append the sink stopped waiting for lands after all.
func TestSink_retries_on_timeout(t *testing.T) {
	t.Parallel()
	const timeout = 400 * time.Millisecond
	for _, mode := range modes {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			e := newFakeEnv(t)
			s, table := openMode(t, e, mode.exactlyOnce, "src-hang", 2, func(c *Config) {
				c.AppendTimeout, c.RequestTimeout = timeout, timeout
			})
			recs := sinktest.Records("src-hang", "hang", 120, 2)
			ctx := context.Background()
			if err := s.Write(ctx, recs[:40]); err != nil {
				t.Fatalf("write before the hang: %v", err)
			}

			e.fake.StartHang()
			for attempt, want := range []string{"append_timeout", "_timeout"} {
				start := time.Now()
				err := s.Write(ctx, recs[40:])
				took := time.Since(start)
				switch {
				case err == nil:
					t.Fatalf("attempt %d: write to a hung server succeeded", attempt+1)
				case sinks.IsPermanent(err):
					t.Fatalf("attempt %d: permanent error %v, want a transient one", attempt+1, err)
				case !isTimeout(err) || !strings.Contains(err.Error(), want):
					t.Fatalf("attempt %d: error %q, want a timeout naming %s", attempt+1, err, want)
				case took > 10*timeout:
					t.Fatalf("attempt %d: write took %v with a timeout of %v", attempt+1, took, timeout)
				}
				var be *sinks.BatchError
				if errors.As(err, &be) {
					t.Fatalf("attempt %d: got a BatchError %v; no record landed, want the transient error", attempt+1, err)
				}
				t.Logf("attempt %d: %v after %v", attempt+1, err, took.Round(time.Millisecond))
			}
			if n := e.fake.RowCount(testProject, testDataset, table); n != 40 {
				t.Fatalf("%d rows in the table during the hang, want 40", n)
			}
			if mode.exactlyOnce {
				// An append the sink gave up on is still held on its open stream: it lands
				// when the hang ends, and the retry must not append its rows again.
				if e.fake.HeldAppends() == 0 {
					t.Fatal("no append held at the end of the hang: the test would not cover a late landing")
				}
			} else {
				// The default stream's connection was dropped: its unanswered appends are
				// abandoned instead of blocking the appends of the next Write.
				waitFor(t, 5*time.Second, "the abandoned appends to be dropped", func() bool { return e.fake.HeldAppends() == 0 })
			}
			e.fake.EndHang()

			if dead, _ := deliver(t, s, recs[40:]); len(dead) > 0 {
				t.Fatalf("dead-lettered %v", dead)
			}
			waitFor(t, 10*time.Second, "appends in flight to be answered", func() bool { return e.fake.InFlight() == 0 })
			checkLanded(t, e.ids(t, table), idsOf(recs), true)
		})
	}
}

// TestConfig_timeout_defaults: a config built in code without timeouts gets the documented
// defaults; set ones are kept.
func TestConfig_timeout_defaults(t *testing.T) {
	md := allKinds(t)
	for _, tc := range []struct {
		name                   string
		appendT, requestT      time.Duration
		wantAppend, wantRequst time.Duration
	}{
		{"zero", 0, 0, 30 * time.Second, time.Minute},
		{"set", 2 * time.Second, 5 * time.Second, 2 * time.Second, 5 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lay, err := compile(md, "")
			if err != nil {
				t.Fatal(err)
			}
			set, err := check(Config{Project: "p", Dataset: "d", AppendTimeout: tc.appendT, RequestTimeout: tc.requestT}, lay)
			if err != nil {
				t.Fatal(err)
			}
			if set.appendTimeout != tc.wantAppend || set.requestTimeout != tc.wantRequst {
				t.Fatalf("append %v request %v, want %v and %v", set.appendTimeout, set.requestTimeout, tc.wantAppend, tc.wantRequst)
			}
		})
	}
}

func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(within); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s", within, what)
		}
	}
}
