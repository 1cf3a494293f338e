// Package childproc runs server binaries (Apache Kafka, clickhouse-server) as child processes
// on loopback for the test harness and `switchyard dev`: start with output to a log file,
// wait until ready, stop, and the helpers around them (free ports, log tails).
package childproc

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// Process is one run of a server binary whose stdout and stderr append to a log file. It is
// not safe for concurrent use; its owner serializes access.
type Process struct {
	name string
	cmd  *exec.Cmd
	done chan struct{} // closed once the process has exited and been reaped
	err  error         // exit status, valid after done is closed
}

// Start starts argv[0] in dir with output appended to logPath. The child is killed if this
// process dies (Pdeathsig), and runs in its own process group, so that a terminal's Ctrl-C
// (SIGINT to the whole foreground group) reaches only this process, which stops the child
// itself after it drained: `switchyard dev` still has its ClickHouse server while it lands
// what is in flight.
func Start(name, dir, logPath string, argv []string) (*Process, error) {
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open %s log: %w", name, err)
	}
	defer logFile.Close() // the child holds its own descriptor
	fmt.Fprintf(logFile, "=== %s starting at %s: %s\n", name, time.Now().Format(time.RFC3339Nano), strings.Join(argv, " "))
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s (%s): %w", name, argv[0], err)
	}
	p := &Process{name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// Exited reports whether the process has exited.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Stop sends SIGTERM, waits up to grace, then sends SIGKILL; it returns once the process is
// reaped, and is a no-op for a process that already exited.
func (p *Process) Stop(grace time.Duration) {
	if p.Exited() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return
	case <-time.After(grace):
	}
	_ = p.cmd.Process.Kill()
	<-p.done
}

// WaitReady polls probe every interval until it returns nil. It fails when ctx ends (with the
// last probe error) or when the process exits first.
func (p *Process) WaitReady(ctx context.Context, interval time.Duration, probe func(context.Context) error) error {
	for {
		if p.Exited() {
			return fmt.Errorf("exited during startup: %v", p.err)
		}
		probeCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		last := probe(probeCtx)
		cancel()
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not ready: %w (last probe: %v)", ctx.Err(), last)
		case <-p.done:
		case <-time.After(interval):
		}
	}
}

// LogTail returns the last n lines of the file at path, or a note saying why it could not be
// read.
func LogTail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	lines = lines[max(0, len(lines)-n):]
	return string(bytes.Join(lines, []byte("\n")))
}

// WithLogTail wraps err with the last 40 lines of each non-empty log in paths.
func WithLogTail(err error, paths ...string) error {
	for _, path := range paths {
		if FileSize(path) == 0 {
			continue
		}
		err = fmt.Errorf("%w\n--- last lines of %s ---\n%s\n---", err, path, LogTail(path, 40))
	}
	return err
}

// FileSize is the size of the file at path, or 0 if it cannot be read.
func FileSize(path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return st.Size()
}

// LogSinceMentions reports whether the log at path contains s after byte offset from.
func LogSinceMentions(path string, from int64, s string) bool {
	b, err := os.ReadFile(path)
	if err != nil || int64(len(b)) < from {
		return false
	}
	return bytes.Contains(b[from:], []byte(s))
}

// FreePorts returns n distinct TCP ports that were free on 127.0.0.1 a moment ago. Another
// process can take one before the server binds it; callers retry with new ports when the
// server reports "Address already in use".
func FreePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("reserve a free loopback port: %w", err)
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// WaitPortFree polls until nothing listens on 127.0.0.1:port, so a restart can bind the same
// port again.
func WaitPortFree(ctx context.Context, port int) error {
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	for {
		l, err := net.Listen("tcp", addr)
		if err == nil {
			l.Close()
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for %s to be free: %w (last: %v)", addr, ctx.Err(), err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
