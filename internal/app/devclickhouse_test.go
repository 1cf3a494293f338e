package app

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/switchyard-dev/switchyard/internal/chserver"
	"github.com/switchyard-dev/switchyard/internal/config"
	"github.com/switchyard-dev/switchyard/sinks/clickhouse"
)

func TestStartDevClickHouse_says_plainly_when_it_is_not_there(t *testing.T) {
	tests := []struct {
		name    string
		env     string
		enabled bool
		start   error
		want    []string
		addr    string
	}{
		{"not installed", "", true, fmt.Errorf("look: %w", chserver.ErrNotInstalled),
			[]string{"clickhouse-server is not installed, so ClickHouse lands are skipped", chserver.InstallHint, devClickHouseEnv}, ""},
		{"fails to start", "", true, errors.New("exited during startup: exit status 70"),
			[]string{"clickhouse-server did not start, so ClickHouse lands are skipped: exited during startup"}, ""},
		{"turned off", "", false, nil, []string{"ClickHouse lands are off (--clickhouse=false)"}, ""},
		{"user's server", "10.0.0.7:9000", true, nil, []string{"landing sample bids in the server at 10.0.0.7:9000"}, "10.0.0.7:9000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(devClickHouseEnv, tt.env)
			started := false
			prev := startClickHouse
			startClickHouse = func(context.Context, string) (*chserver.Server, error) {
				started = true
				return nil, tt.start
			}
			t.Cleanup(func() { startClickHouse = prev })
			var out bytes.Buffer
			ch := startDevClickHouse(context.Background(), tt.enabled, &out)
			defer ch.stop()
			for _, w := range tt.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, out.String())
				}
			}
			if ch.addr != tt.addr || ch.enabled() != (tt.addr != "") {
				t.Errorf("addr = %q (enabled %v), want %q", ch.addr, ch.enabled(), tt.addr)
			}
			if wantStart := tt.env == "" && tt.enabled; started != wantStart {
				t.Errorf("server start attempted = %v, want %v", started, wantStart)
			}
		})
	}
}

func TestDropClickHouseSinks(t *testing.T) {
	const yaml = `
kafka: {brokers: [localhost:9092]}
contracts: {path: contracts}
pipelines:
  - name: mixed
    owner: {team: a, contact: a}
    source: {topics: [a]}
    contract: {message: auctions.v1.BidPlaced}
    sinks:
      - {name: bus, kafka: {topic: out}}
      - {name: olap, clickhouse: {addresses: ["h:9000"]}}
    routes:
      - {sink: bus}
      - {sink: olap}
      - {sink: bus, topic: big, when: "event.amount.units > 5"}
    dead_letter: {topic: dlq}
  - name: only-clickhouse
    owner: {team: a, contact: a}
    source: {topics: [b]}
    contract: {message: auctions.v1.BidPlaced}
    sinks:
      - {name: olap, clickhouse: {addresses: ["h:9000"]}}
    routes:
      - {sink: olap}
    dead_letter: {topic: dlq}
`
	cfg, err := config.Parse("test.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	dropped := dropSinks[*clickhouse.Config](cfg)
	if want := []string{"mixed/olap", "only-clickhouse/olap"}; !slices.Equal(dropped, want) {
		t.Fatalf("dropped %v, want %v", dropped, want)
	}
	if len(cfg.Pipelines) != 1 || cfg.Pipelines[0].Name != "mixed" {
		t.Fatalf("pipelines left: %+v", cfg.Pipelines)
	}
	p := cfg.Pipelines[0]
	if len(p.Sinks) != 1 || p.Sinks[0].Name != "bus" {
		t.Fatalf("sinks left: %+v", p.Sinks)
	}
	if len(p.Routes) != 2 || p.Routes[0].Sink != "bus" || p.Routes[1].Topic != "big" {
		t.Fatalf("routes left: %+v", p.Routes)
	}
}
