package chserver

import (
	"errors"
	"os/exec"
	"slices"
	"testing"
)

// TestCommand_binary_selection checks which server binary is started: Debian's
// clickhouse-server first, else the upstream single `clickhouse` binary as `clickhouse
// server` (what the official packages and the install script put on PATH), else
// /usr/sbin/clickhouse-server off PATH, else an error with the install hint.
func TestCommand_binary_selection(t *testing.T) {
	for _, tc := range []struct {
		name    string
		onPath  map[string]string
		sbin    bool
		want    []string
		wantErr bool
	}{
		{"debian", map[string]string{"clickhouse-server": "/usr/bin/clickhouse-server"}, true, []string{"/usr/bin/clickhouse-server"}, false},
		{"upstream only", map[string]string{"clickhouse": "/opt/ch/clickhouse"}, false, []string{"/opt/ch/clickhouse", "server"}, false},
		{"both", map[string]string{"clickhouse-server": "/usr/bin/clickhouse-server", "clickhouse": "/opt/ch/clickhouse"}, false, []string{"/usr/bin/clickhouse-server"}, false},
		{"sbin off PATH", nil, true, []string{"/usr/sbin/clickhouse-server"}, false},
		{"none", nil, false, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			look := func(name string) (string, error) {
				if p, ok := tc.onPath[name]; ok {
					return p, nil
				}
				return "", exec.ErrNotFound
			}
			got, err := command(look, func(p string) bool { return tc.sbin && p == "/usr/sbin/clickhouse-server" })
			if tc.wantErr {
				if !errors.Is(err, ErrNotInstalled) {
					t.Fatalf("err = %v, want ErrNotInstalled", err)
				}
				return
			}
			if err != nil || !slices.Equal(got, tc.want) {
				t.Fatalf("command = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}
