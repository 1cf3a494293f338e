package childproc

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestProcess_lifecycle(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "p.log")
	p, err := Start("sleeper", dir, log, []string{"sh", "-c", "printf 'r%sy\\n' ead; exec sleep 30"})
	if err != nil {
		t.Fatal(err)
	}
	ready := false
	err = p.WaitReady(context.Background(), 10*time.Millisecond, func(context.Context) error {
		if !LogSinceMentions(log, 0, "ready") { // the command line, logged first, does not say it
			return errors.New("no greeting yet")
		}
		ready = true
		return nil
	})
	if err != nil || !ready || p.Exited() {
		t.Fatalf("WaitReady: %v (ready %v, exited %v)", err, ready, p.Exited())
	}
	p.Stop(5 * time.Second)
	if !p.Exited() {
		t.Fatal("Stop returned before the process exited")
	}
	if tail := LogTail(log, 1); tail != "ready" {
		t.Fatalf("LogTail = %q", tail)
	}
	if err := WithLogTail(errors.New("boom"), log); !strings.Contains(err.Error(), "ready") {
		t.Fatalf("WithLogTail: %v", err)
	}
}

func TestProcess_exit_during_startup_fails_WaitReady(t *testing.T) {
	dir := t.TempDir()
	p, err := Start("quitter", dir, filepath.Join(dir, "q.log"), []string{"sh", "-c", "exit 3"})
	if err != nil {
		t.Fatal(err)
	}
	err = p.WaitReady(context.Background(), 10*time.Millisecond, func(context.Context) error { return errors.New("never") })
	if err == nil || !strings.Contains(err.Error(), "exited during startup") {
		t.Fatalf("WaitReady = %v, want an exit error", err)
	}
}

func TestFreePorts_distinct_and_bindable(t *testing.T) {
	ports, err := FreePorts(3)
	if err != nil {
		t.Fatal(err)
	}
	if ports[0] == ports[1] || ports[1] == ports[2] || ports[0] == ports[2] {
		t.Fatalf("ports not distinct: %v", ports)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := WaitPortFree(ctx, ports[0]); err != nil {
		t.Fatal(err)
	}
}
