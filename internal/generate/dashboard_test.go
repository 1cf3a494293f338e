package generate

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/dashboard.golden.json")

func devDashboard(t *testing.T) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := WriteDashboard(&buf, devPipelines(t)); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestDashboard_golden(t *testing.T) {
	got := devDashboard(t)
	const golden = "testdata/dashboard.golden.json"
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test ./internal/generate -run TestDashboard_golden -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("dashboard differs from %s; if the change is intended, run go test ./internal/generate -run TestDashboard_golden -update", golden)
	}
}

// TestDashboard_rows checks the structure the golden file pins: a row per pipeline of
// configs/dev.yaml, each followed by the same panels, every query of which selects its
// pipeline.
func TestDashboard_rows(t *testing.T) {
	var d struct {
		UID    string `json:"uid"`
		Panels []struct {
			ID      int    `json:"id"`
			Type    string `json:"type"`
			Title   string `json:"title"`
			GridPos struct{ X, Y, W, H int }
			Targets []struct {
				Expr       string `json:"expr"`
				Datasource struct {
					UID string `json:"uid"`
				} `json:"datasource"`
			} `json:"targets"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Name  string `json:"name"`
				Query string `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(devDashboard(t), &d); err != nil {
		t.Fatal(err)
	}
	if d.UID != DashboardUID {
		t.Errorf("uid = %q, want %q", d.UID, DashboardUID)
	}
	if len(d.Templating.List) != 1 || d.Templating.List[0].Name != "datasource" || d.Templating.List[0].Query != "prometheus" {
		t.Errorf("templating = %+v, want one prometheus datasource variable", d.Templating.List)
	}
	wantTitles := []string{PanelEventRates, PanelLagRecords, PanelLagSeconds, PanelFreshness, PanelDeadLetters, PanelErrorBudgets}
	var rows []string
	titles := map[string][]string{}
	lastY := -1
	ids := map[int]bool{}
	for _, p := range d.Panels {
		if p.ID == 0 || ids[p.ID] {
			t.Errorf("panel %q: id %d is zero or taken", p.Title, p.ID)
		}
		ids[p.ID] = true
		if p.GridPos.X+p.GridPos.W > 24 || p.GridPos.W == 0 || p.GridPos.H == 0 {
			t.Errorf("panel %q: gridPos %+v does not fit the 24-column grid", p.Title, p.GridPos)
		}
		if p.GridPos.Y < lastY {
			t.Errorf("panel %q at y=%d above the panel before it (y=%d)", p.Title, p.GridPos.Y, lastY)
		}
		lastY = p.GridPos.Y
		if p.Type == "row" {
			rows = append(rows, p.Title)
			continue
		}
		if len(rows) == 0 {
			t.Fatalf("panel %q before the first row", p.Title)
		}
		row := rows[len(rows)-1]
		titles[row] = append(titles[row], p.Title)
		pipeline := strings.Fields(row)[0]
		if len(p.Targets) == 0 {
			t.Errorf("row %q panel %q has no queries", row, p.Title)
		}
		for _, q := range p.Targets {
			if !strings.Contains(q.Expr, `pipeline="`+pipeline+`"`) {
				t.Errorf("row %q panel %q: query %q does not select its pipeline", row, p.Title, q.Expr)
			}
			if q.Datasource.UID != "${datasource}" {
				t.Errorf("row %q panel %q: datasource %q, want ${datasource}", row, p.Title, q.Datasource.UID)
			}
		}
	}
	wantRows := []string{
		"livestream-views (team livestream, #livestream-oncall)",
		"auction-bids (team auctions, #auctions-oncall)",
		"orders-paid (team payments, payments-oncall@example.com)",
	}
	if !slices.Equal(rows, wantRows) {
		t.Fatalf("rows = %q, want %q", rows, wantRows)
	}
	for _, r := range rows {
		if !slices.Equal(titles[r], wantTitles) {
			t.Errorf("row %q panels = %q, want %q", r, titles[r], wantTitles)
		}
	}
}

func TestDashboard_error_budget_per_slo_per_sink(t *testing.T) {
	ps := devPipelines(t)
	d, err := Dashboard(ps)
	if err != nil {
		t.Fatal(err)
	}
	var budgets int
	for _, p := range d.Panels {
		if p.Panel != nil && p.Panel.Title != nil && *p.Panel.Title == PanelErrorBudgets {
			budgets += len(p.Panel.Targets)
		}
	}
	// Two SLOs for each of the four sinks of configs/dev.yaml.
	if budgets != 8 {
		t.Fatalf("error budget queries = %d, want 8", budgets)
	}
}

func TestRefID(t *testing.T) {
	for n, want := range map[int]string{0: "A", 25: "Z", 26: "AA", 27: "AB", 52: "BA"} {
		if got := refID(n); got != want {
			t.Errorf("refID(%d) = %q, want %q", n, got, want)
		}
	}
}

// TestDashboard_queries_parse has promtool parse every query of the dashboard, as the
// expressions of recording rules, with Grafana's $__rate_interval replaced by a duration.
func TestDashboard_queries_parse(t *testing.T) {
	d, err := Dashboard(devPipelines(t))
	if err != nil {
		t.Fatal(err)
	}
	var rules []Rule
	for _, p := range d.Panels {
		if p.Panel == nil {
			continue
		}
		for _, q := range p.Panel.Targets {
			b, err := json.Marshal(q)
			if err != nil {
				t.Fatal(err)
			}
			var target struct {
				Expr string `json:"expr"`
			}
			if err := json.Unmarshal(b, &target); err != nil || target.Expr == "" {
				t.Fatalf("panel %q: query %s has no expr (%v)", *p.Panel.Title, b, err)
			}
			rules = append(rules, Rule{Record: fmt.Sprintf("dashboard:query_%d", len(rules)), Expr: strings.ReplaceAll(target.Expr, "$__rate_interval", "5m")})
		}
	}
	dir := t.TempDir()
	writeYAML(t, dir+"/queries.yaml", RuleFile{Groups: []RuleGroup{{Name: "dashboard", Rules: rules}}})
	out := runPromtool(t, dir, "check", "rules", "queries.yaml")
	if want := fmt.Sprintf("SUCCESS: %d rules found", len(rules)); !strings.Contains(out, want) {
		t.Fatalf("promtool check rules: want %q in\n%s", want, out)
	}
}
