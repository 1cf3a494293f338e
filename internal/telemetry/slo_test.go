package telemetry

import (
	"bytes"
	"errors"
	"log/slog"
	"math"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
)

func TestBurnRate(t *testing.T) {
	for _, tc := range []struct {
		good, total int64
		objective   float64
		want        float64
	}{
		{0, 0, 0.999, 0},       // no events: nothing burns
		{1000, 1000, 0.999, 0}, // all good
		{999, 1000, 0.999, 1},  // exactly the budget
		{990, 1000, 0.999, 10}, // ten times the budget
		{0, 10, 0.99, 100},     // all bad
		{95, 100, 0.9, 0.5},    // half the budget
	} {
		if got := BurnRate(tc.good, tc.total, tc.objective); math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("BurnRate(%d, %d, %v) = %v, want %v", tc.good, tc.total, tc.objective, got, tc.want)
		}
	}
}

// The burn rate of each window counts only the events of that window: bad events an hour ago
// burn the 6h and 1h windows, not the 5m and 30m ones.
func TestSLO_burn_rates_per_window_with_a_fake_clock(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	m := New()
	s := m.NewSLO("p", "s", SLOCompleteness, 0.99, func() time.Time { return now })
	s.Add(90, 100) // 10% bad: burn rate 10
	now = now.Add(59 * time.Minute)
	s.Add(100, 100) // all good
	want := map[string]float64{"5m": 0, "30m": 0, "1h": 5, "6h": 5}
	for _, w := range BurnWindows {
		if got := s.BurnRate(w.D); math.Abs(got-want[w.Name]) > 1e-9 {
			t.Errorf("burn rate over %s = %v, want %v", w.Name, got, want[w.Name])
		}
	}
	now = now.Add(6 * time.Hour) // everything falls out of the ring
	if got := s.BurnRate(6 * time.Hour); got != 0 {
		t.Errorf("burn rate over 6h after 7h = %v, want 0", got)
	}
	if got := s.BudgetRemaining(); math.Abs(got-(-4)) > 1e-9 { // 5% bad of a 1% budget: overspent four times
		t.Errorf("budget remaining since start = %v, want -4", got)
	}
	// The gauges are exported at scrape time.
	mfs, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]bool{}
	for _, mf := range mfs {
		found[mf.GetName()] = true
		if mf.GetName() == "switchyard_slo_objective" && mf.GetMetric()[0].GetGauge().GetValue() != 0.99 {
			t.Errorf("switchyard_slo_objective = %v, want 0.99", mf.GetMetric()[0].GetGauge().GetValue())
		}
		if mf.GetName() == "switchyard_slo_burn_rate" && len(mf.GetMetric()) != len(BurnWindows) {
			t.Errorf("switchyard_slo_burn_rate has %d series, want %d", len(mf.GetMetric()), len(BurnWindows))
		}
	}
	for _, name := range []string{"switchyard_slo_objective", "switchyard_slo_burn_rate", "switchyard_slo_events_total",
		"switchyard_slo_good_events_total", "switchyard_build_info"} {
		if !found[name] {
			t.Errorf("%s is not exported", name)
		}
	}
}

// Dead-letter lines are rate limited per pipeline and reason, the counter counts every one.
func TestDeadLettered_logs_are_rate_limited_counters_exact(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	m := New()
	now := time.Unix(1000, 0)
	lim := NewLimiter(time.Minute)
	lim.now = func() time.Time { return now }
	for range 5 {
		DeadLettered(log, m, lim, "p", "validate", "", "in", 0, 1, "c", "", "bad")
	}
	DeadLettered(log, m, lim, "p", "route", "r1", "in", 0, 2, "c", "bus", "no key") // another reason
	now = now.Add(time.Minute)
	DeadLettered(log, m, lim, "p", "validate", "", "in", 0, 3, "c", "", "bad")
	if got := strings.Count(buf.String(), "dead-lettered event"); got != 3 {
		t.Errorf("%d dead-letter lines, want 3 (first validate, first route, then a summary):\n%s", got, buf.String())
	}
	if !strings.Contains(buf.String(), "suppressed=4") {
		t.Errorf("the line after the interval does not report the 4 suppressed:\n%s", buf.String())
	}
	// A burst that stops is summed up by the next flush after its interval.
	for range 3 {
		DeadLettered(log, m, lim, "p", "validate", "", "in", 0, 4, "c", "", "bad")
	}
	DeadLetteredSummary(log, lim)
	if strings.Contains(buf.String(), "dead-lettered events suppressed") {
		t.Errorf("summary before the interval passed:\n%s", buf.String())
	}
	now = now.Add(time.Minute)
	DeadLetteredSummary(log, lim)
	DeadLetteredSummary(log, lim) // nothing more to report
	if got := strings.Count(buf.String(), "msg=\"dead-lettered events suppressed\" pipeline=p reason=validate suppressed=3"); got != 1 {
		t.Errorf("%d summary lines for the 3 suppressed, want 1:\n%s", got, buf.String())
	}
	if got := m.DeadLetteredCount("p", "validate"); got != 9 {
		t.Errorf("dead-lettered validate = %v, want 9", got)
	}
	var d dto.Metric
	if err := m.DeadLettered.WithLabelValues("p", "route", "r1", "bus").Write(&d); err != nil || d.GetCounter().GetValue() != 1 {
		t.Errorf("dead-lettered{route=r1,sink=bus} = %v, want 1", d.GetCounter().GetValue())
	}
}

func TestOffsetCommitFailed_counts_per_lane_and_logs(t *testing.T) {
	var buf bytes.Buffer
	m := New()
	log := slog.New(slog.NewTextHandler(&buf, nil))
	OffsetCommitFailed(log, m, "p", "bus", errors.New("commit in/0 at 10: OFFSET_METADATA_TOO_LARGE"))
	OffsetCommitFailed(log, m, "p", "bus", errors.New("again"))
	var d dto.Metric
	if err := m.CommitFailures.WithLabelValues("p", "bus").Write(&d); err != nil || d.GetCounter().GetValue() != 2 {
		t.Errorf("switchyard_offset_commit_failures_total = %v, want 2", d.GetCounter().GetValue())
	}
	if got := strings.Count(buf.String(), `level=WARN msg="offset commit failed" pipeline=p sink=bus`); got != 2 {
		t.Errorf("%d WARN lines, want 2:\n%s", got, buf.String())
	}
}
