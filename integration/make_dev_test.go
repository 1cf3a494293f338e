package integration

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestMakeDev_ctrl_c_on_a_terminal_exits_0 does what a newcomer does: `make dev` in a terminal,
// wait for sample bids to land in ClickHouse, press Ctrl-C. The terminal is a real
// pseudo-terminal whose session make leads, and Ctrl-C is the byte 0x03 written to it: the
// terminal driver sends SIGINT to its whole foreground process group, as it does for a person.
// make must exit 0, the drain must land what was in flight while the private
// clickhouse-server still runs (it is in a group of its own), and the summary must count the
// landed rows.
func TestMakeDev_ctrl_c_on_a_terminal_exits_0(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Fatalf("make is not installed (.ci/setup installs it): %v", err)
	}
	master, slave := openPTY(t)
	logFile := filepath.Join(t.TempDir(), "dev.log")
	cmd := exec.Command("make", "--no-print-directory", "dev", "DEV_FLAGS=--rate 2000 --log-format json --log-file "+logFile)
	cmd.Dir = repoRoot()
	cmd.Env = append(os.Environ(), "SWITCHYARD_ADMIN=127.0.0.1:0")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	// A new session with the pty as its controlling terminal: make leads the foreground group,
	// as when a shell runs it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	slave.Close()
	var mu sync.Mutex
	var out bytes.Buffer
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		buf := make([]byte, 4096)
		for {
			n, err := master.Read(buf)
			mu.Lock()
			out.Write(buf[:n])
			mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	output := func() string { mu.Lock(); defer mu.Unlock(); return out.String() }
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })

	// The first build of the binary can take minutes on a cold cache.
	waitFor(t, 8*time.Minute, "make dev to land sample bids in ClickHouse", func() bool {
		return regexp.MustCompile(`olap:[1-9]`).MatchString(output())
	})
	time.Sleep(2 * time.Second)                           // events in flight at the Ctrl-C
	if _, err := master.Write([]byte{0x03}); err != nil { // Ctrl-C
		t.Fatal(err)
	}
	var err error
	select {
	case err = <-done:
	case <-time.After(90 * time.Second):
		t.Fatalf("make dev did not exit within 90s of Ctrl-C; output:\n%s", lastBytes(output(), 3000))
	}
	<-readDone
	got := output()
	if err != nil {
		b, _ := os.ReadFile(logFile)
		t.Fatalf("make dev after Ctrl-C: %v (want exit 0)\noutput:\n%s\nlog tail:\n%s", err, lastBytes(got, 3000), lastBytes(string(b), 2000))
	}
	for _, bad := range []string{"connection refused", "could not count", "Error 1", "Interrupt"} {
		if strings.Contains(got, bad) {
			t.Errorf("make dev output contains %q:\n%s", bad, lastBytes(got, 3000))
		}
	}
	for _, want := range []string{"building bin/switchyard", "starting bin/switchyard dev"} {
		if !strings.Contains(got, want) {
			t.Errorf("make dev output lacks %q:\n%s", want, lastBytes(got, 3000))
		}
	}
	m := regexp.MustCompile(`holds (\d+) rows \((\d+) distinct source offsets\)`).FindStringSubmatch(got)
	if m == nil {
		t.Fatalf("no ClickHouse row count after Ctrl-C:\n%s", lastBytes(got, 3000))
	}
	if rows, _ := strconv.Atoi(m[1]); rows == 0 || m[1] != m[2] {
		t.Errorf("ClickHouse summary %q: want rows > 0, each source offset once", m[0])
	}
	if b, _ := os.ReadFile(logFile); !strings.Contains(string(b), `"msg":"drained`) {
		t.Errorf("no drained line in the dev log after Ctrl-C:\n%s", lastBytes(string(b), 2000))
	}
}

// openPTY opens a pseudo-terminal pair: the master end the test types into and reads, the
// slave end for the child's stdin, stdout and stderr.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open /dev/ptmx: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	fd := int(m.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		t.Fatalf("unlock pty: %v", err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		t.Fatalf("pty number: %v", err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open pty slave: %v", err)
	}
	return m, s
}
