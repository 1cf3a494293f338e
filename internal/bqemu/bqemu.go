// Package bqemu runs PyPI's bqemulator (a third-party BigQuery emulator: REST and the
// Storage Write gRPC API over DuckDB) as a child process on loopback, for the sink tests, the
// integration tests and `switchyard dev`.
//
// .ci/setup installs it into a virtual environment (see Dir) together with numpy and the
// DuckDB spatial and avro extensions, installed under the environment's own HOME so the
// emulator never tries to download them.
package bqemu

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/switchyard-dev/switchyard/internal/childproc"
)

// Project is the default project id the emulator is started with.
const Project = "switchyard-test"

// InstallHint says how to install the emulator.
const InstallHint = "run .ci/setup (it installs bqemulator into ~/.cache/switchyard/bqemulator-venv)"

// ErrNotInstalled is returned (wrapped) by Start when the virtual environment is missing.
var ErrNotInstalled = errors.New("bqemulator is not installed")

// StopGrace is how long Stop waits after SIGTERM before SIGKILL.
var StopGrace = 10 * time.Second

// Dir is the virtual environment holding the emulator: $SWITCHYARD_BQEMULATOR_VENV when set,
// else ~/.cache/switchyard/bqemulator-venv (where .ci/setup puts it). The emulator runs with
// HOME set to its home/ subdirectory, where the DuckDB extensions were installed.
func Dir() string {
	if d := os.Getenv("SWITCHYARD_BQEMULATOR_VENV"); d != "" {
		return d
	}
	base, err := os.UserCacheDir()
	if err != nil {
		base = os.TempDir()
	}
	return filepath.Join(base, "switchyard", "bqemulator-venv")
}

// Installed reports whether Dir holds an emulator ready to start.
func Installed() bool {
	st, err := os.Stat(filepath.Join(Dir(), "bin", "bqemulator"))
	return err == nil && !st.IsDir()
}

// Server is one emulator process (ephemeral: its tables live in memory). Its methods are
// safe for concurrent use.
type Server struct {
	dir      string
	logPath  string
	restPort int
	grpcPort int

	mu   sync.Mutex
	proc *childproc.Process
}

// Start starts an emulator whose log lives in dir (created if missing). It returns once the
// REST API answers, or fails when ctx ends, the emulator exits, or it is not installed
// (ErrNotInstalled). The child gets SIGKILL if this process dies. The caller must call Stop.
func Start(ctx context.Context, dir string) (*Server, error) {
	if !Installed() {
		return nil, fmt.Errorf("%w in %s; %s", ErrNotInstalled, Dir(), InstallHint)
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	s := &Server{dir: dir, logPath: filepath.Join(dir, "bqemulator.log")}
	for attempt := 1; ; attempt++ {
		ports, err := childproc.FreePorts(2)
		if err != nil {
			return nil, err
		}
		s.restPort, s.grpcPort = ports[0], ports[1]
		from := childproc.FileSize(s.logPath)
		err = s.start(ctx)
		if err == nil {
			return s, nil
		}
		if attempt < 3 && ctx.Err() == nil && childproc.LogSinceMentions(s.logPath, from, "address already in use") {
			continue
		}
		return nil, err
	}
}

func (s *Server) start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	venv := Dir()
	argv := []string{
		"/usr/bin/env", "HOME=" + filepath.Join(venv, "home"), "PYTHONUNBUFFERED=1",
		filepath.Join(venv, "bin", "bqemulator"), "start",
		"--rest-host", "127.0.0.1", "--rest-port", strconv.Itoa(s.restPort),
		"--grpc-host", "127.0.0.1", "--grpc-port", strconv.Itoa(s.grpcPort),
		"--ephemeral", "--project", Project, "--log-level", logLevel(), "--log-format", "console",
	}
	p, err := childproc.Start("bqemulator", s.dir, s.logPath, argv)
	if err != nil {
		return err
	}
	s.proc = p
	client := &http.Client{Timeout: 2 * time.Second}
	err = p.WaitReady(ctx, 100*time.Millisecond, func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.RESTEndpoint()+"projects/"+Project+"/datasets", nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("list datasets: %s", resp.Status)
		}
		return nil
	})
	if err != nil {
		p.Stop(0)
		return childproc.WithLogTail(fmt.Errorf("bqemulator on %s: %w", s.RESTEndpoint(), err), s.logPath)
	}
	return nil
}

// logLevel is $SWITCHYARD_BQEMULATOR_LOG_LEVEL, else warning.
func logLevel() string {
	if l := os.Getenv("SWITCHYARD_BQEMULATOR_LOG_LEVEL"); l != "" {
		return l
	}
	return "warning"
}

// RESTEndpoint is the BigQuery REST base URL, for the sink's endpoint and for
// option.WithEndpoint: it ends in /bigquery/v2/, which the emulator needs.
func (s *Server) RESTEndpoint() string {
	return "http://127.0.0.1:" + strconv.Itoa(s.restPort) + "/bigquery/v2/"
}

// GRPCAddr is the Storage Write API address (host:port), for the sink's grpc_endpoint.
func (s *Server) GRPCAddr() string { return "127.0.0.1:" + strconv.Itoa(s.grpcPort) }

// LogPath is the emulator's log file.
func (s *Server) LogPath() string { return s.logPath }

// Stop stops the emulator (SIGTERM, then SIGKILL after StopGrace); its tables are gone.
// Stopping a stopped server does nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		s.proc.Stop(StopGrace)
	}
}
