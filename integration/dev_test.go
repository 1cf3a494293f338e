package integration

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestDev_ctrl_c_drains_and_exits_0: Ctrl-C in a terminal sends SIGINT to the whole
// foreground process group, the children `switchyard dev` runs (its ClickHouse server)
// included. The drain must still land what is in flight and exit 0, as the README says.
func TestDev_ctrl_c_drains_and_exits_0(t *testing.T) {
	logFile := filepath.Join(t.TempDir(), "dev.log")
	cmd := exec.Command(daemonBinary(t), "dev", "--rate", "2000", "--log-format", "json", "--log-file", logFile)
	cmd.Dir = repoRoot()
	cmd.Env = append(os.Environ(), "SWITCHYARD_ADMIN=127.0.0.1:0")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // a terminal's foreground group
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })
	waitFor(t, time.Minute, "dev to land events in ClickHouse", func() bool {
		b, _ := os.ReadFile(logFile)
		return strings.Contains(out.String(), "olap:") && !strings.Contains(out.String(), "olap:0]") && len(b) > 0
	})
	time.Sleep(2 * time.Second)
	if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			b, _ := os.ReadFile(logFile)
			t.Fatalf("dev after Ctrl-C: %v\noutput:\n%s\nlog tail:\n%s", err, out.String(), lastBytes(string(b), 2000))
		}
	case <-time.After(90 * time.Second):
		t.Fatal("dev did not exit within 90s of Ctrl-C")
	}
	if b, _ := os.ReadFile(logFile); !strings.Contains(string(b), `"msg":"drained`) {
		t.Fatalf("no drained line in the dev log after Ctrl-C:\n%s", lastBytes(string(b), 2000))
	}
}

func lastBytes(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
