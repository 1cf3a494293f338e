// Package chserver runs a private clickhouse-server as a child process: its own generated
// configuration, random free 127.0.0.1 ports, and data, logs and temporary files in one
// directory. `switchyard dev` uses it to land sample events in ClickHouse; the integration test
// harness (integration/harness) wraps it for tests.
//
// The generated configuration suits Debian's clickhouse-server 18.16 as well as current
// releases (which still read the <yandex> root element): one user, default, without a
// password, reachable from loopback only; database default; server time zone UTC.
package chserver

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/switchyard-dev/switchyard/internal/childproc"
)

// StopGrace is how long Stop waits for a clean shutdown before it sends SIGKILL.
const StopGrace = 30 * time.Second

// InstallHint says how to install the server on Debian or Ubuntu.
const InstallHint = "apt-get install -y clickhouse-server clickhouse-client"

// ErrNotInstalled is returned (wrapped) by Command and Start when no server binary is found.
var ErrNotInstalled = errors.New("clickhouse-server not found on PATH or in /usr/sbin")

// Command returns the command that starts a server, without its config flag:
// clickhouse-server (Debian), or the single `clickhouse` binary of upstream packages as
// `clickhouse server`. The error wraps ErrNotInstalled and says how to install one.
func Command() ([]string, error) {
	return command(exec.LookPath, func(p string) bool { _, err := os.Stat(p); return err == nil })
}

// command is Command with the PATH look-up and the file check passed in, for tests.
func command(lookPath func(string) (string, error), exists func(string) bool) ([]string, error) {
	if p, err := lookPath("clickhouse-server"); err == nil {
		return []string{p}, nil
	}
	if p, err := lookPath("clickhouse"); err == nil {
		return []string{p, "server"}, nil
	}
	// Debian installs it in /usr/sbin, which a non-login PATH may lack.
	if exists("/usr/sbin/clickhouse-server") {
		return []string{"/usr/sbin/clickhouse-server"}, nil
	}
	return nil, fmt.Errorf("%w; install it with `%s`", ErrNotInstalled, InstallHint)
}

// Server is one clickhouse-server child process. Its methods are safe for concurrent use.
type Server struct {
	dir      string
	bin      []string
	config   string
	logPath  string // server log
	errPath  string // server error log
	outPath  string // stdout and stderr, for failures before logging starts
	tcpPort  int
	httpPort int

	mu      sync.Mutex
	proc    *childproc.Process
	version string
}

// Start starts a server whose config, data and logs live in dir (created if missing, never
// removed). It returns once a native connection answers SELECT version(), or fails when ctx
// ends, the server exits, or no server is installed (ErrNotInstalled). Failures end with the
// tail of the server's logs. The child gets SIGKILL if this process dies. The caller must
// call Stop.
func Start(ctx context.Context, dir string) (*Server, error) {
	bin, err := Command()
	if err != nil {
		return nil, err
	}
	dir, err = filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	s := &Server{
		dir:     dir,
		bin:     bin,
		config:  filepath.Join(dir, "config.xml"),
		logPath: filepath.Join(dir, "clickhouse-server.log"),
		errPath: filepath.Join(dir, "clickhouse-server.err.log"),
		outPath: filepath.Join(dir, "clickhouse-server.stdout.log"),
	}
	for _, sub := range []string{"data", "tmp", "user_files", "format_schemas"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			return nil, err
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "users.xml"), []byte(usersXML), 0o644); err != nil {
		return nil, err
	}
	// Free ports can be taken between reservation and bind; retry with fresh ones when that
	// is why the server died.
	for attempt := 1; ; attempt++ {
		ports, err := childproc.FreePorts(2)
		if err != nil {
			return nil, err
		}
		s.tcpPort, s.httpPort = ports[0], ports[1]
		if err := os.WriteFile(s.config, []byte(ConfigXML(dir, s.tcpPort, s.httpPort)), 0o644); err != nil {
			return nil, err
		}
		errStart, outStart := childproc.FileSize(s.errPath), childproc.FileSize(s.outPath)
		err = s.start(ctx)
		if err == nil {
			return s, nil
		}
		inUse := childproc.LogSinceMentions(s.errPath, errStart, "Address already in use") ||
			childproc.LogSinceMentions(s.outPath, outStart, "Address already in use")
		if attempt < 3 && ctx.Err() == nil && inUse {
			continue
		}
		return nil, err
	}
}

func (s *Server) start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil && !s.proc.Exited() {
		return errors.New("already running")
	}
	argv := append(append([]string{}, s.bin...), "--config-file="+s.config)
	p, err := childproc.Start("clickhouse", s.dir, s.outPath, argv)
	if err != nil {
		return err
	}
	s.proc = p

	conn, err := clickhouse.Open(s.Options())
	if err != nil {
		p.Stop(0)
		return fmt.Errorf("open probe connection: %w", err)
	}
	defer conn.Close()
	var version string
	err = p.WaitReady(ctx, 50*time.Millisecond, func(ctx context.Context) error {
		return conn.QueryRow(ctx, "SELECT version()").Scan(&version)
	})
	if err != nil {
		p.Stop(0)
		return childproc.WithLogTail(fmt.Errorf("server on %s: %w", s.Addr(), err), s.outPath, s.errPath)
	}
	s.version = version
	return nil
}

// Restart starts a stopped server again on the same ports with the same data, once nothing
// listens on them any more. It returns once the server answers, or fails when ctx ends.
// Restarting a running server is an error.
func (s *Server) Restart(ctx context.Context) error {
	for _, port := range []int{s.tcpPort, s.httpPort} {
		if err := childproc.WaitPortFree(ctx, port); err != nil {
			return err
		}
	}
	return s.start(ctx)
}

// Stop shuts the server down (SIGTERM, then SIGKILL after StopGrace) and returns once it has
// exited. Data and ports are kept for Restart. Stopping a stopped server does nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		s.proc.Stop(StopGrace)
	}
}

// Options are clickhouse-go options for user default and database default on this server.
func (s *Server) Options() *clickhouse.Options {
	return &clickhouse.Options{
		Addr:        []string{s.Addr()},
		Auth:        clickhouse.Auth{Database: "default", Username: "default"},
		DialTimeout: 2 * time.Second,
	}
}

// Addr is the native protocol address ("127.0.0.1:port"). It stays the same across Stop and
// Restart.
func (s *Server) Addr() string { return "127.0.0.1:" + strconv.Itoa(s.tcpPort) }

// TCPPort is the native protocol port, for `clickhouse-client --port`.
func (s *Server) TCPPort() int { return s.tcpPort }

// HTTPAddr is the HTTP interface address ("127.0.0.1:port").
func (s *Server) HTTPAddr() string { return "127.0.0.1:" + strconv.Itoa(s.httpPort) }

// Version is the server version reported at the last start, e.g. "18.16.1".
func (s *Server) Version() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.version
}

// Dir is the server's directory.
func (s *Server) Dir() string { return s.dir }

// LogPath is the server log file.
func (s *Server) LogPath() string { return s.logPath }

// Query runs sql over the HTTP interface and returns the result rows in TabSeparated form,
// one string per cell with escapes undone (NULL is `\N`). Statements without a result (DDL,
// INSERT) return no rows.
func (s *Server) Query(ctx context.Context, sql string) ([][]string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+s.HTTPAddr()+"/?default_format=TabSeparated", strings.NewReader(sql))
	if err != nil {
		return nil, fmt.Errorf("clickhouse query %q: %w", sql, err)
	}
	req.Close = true // an idle keep-alive connection would delay Stop
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("clickhouse query %q: %w", sql, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("clickhouse query %q: read response: %w", sql, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("clickhouse query %q: %s: %s", sql, resp.Status, bytes.TrimSpace(body))
	}
	return ParseTSV(body), nil
}

// ParseTSV splits TabSeparated output into unescaped cells.
func ParseTSV(b []byte) [][]string {
	s := strings.TrimSuffix(string(b), "\n")
	if s == "" {
		return nil
	}
	var rows [][]string
	for _, line := range strings.Split(s, "\n") {
		cells := strings.Split(line, "\t")
		for i, cell := range cells {
			cells[i] = unescapeTSV(cell)
		}
		rows = append(rows, cells)
	}
	return rows
}

var tsvEscapes = map[byte]byte{'t': '\t', 'n': '\n', 'r': '\r', '0': 0, 'b': '\b', 'f': '\f', '\\': '\\', '\'': '\''}

func unescapeTSV(s string) string {
	if !strings.Contains(s, `\`) || s == `\N` {
		return s
	}
	var out strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			if r, ok := tsvEscapes[s[i+1]]; ok {
				out.WriteByte(r)
				i++
				continue
			}
		}
		out.WriteByte(s[i])
	}
	return out.String()
}

// ConfigXML is a minimal server config that 18.16 accepts: only the native and HTTP ports on
// 127.0.0.1 (no interserver port), everything under dir, no query_log, small caches.
func ConfigXML(dir string, tcpPort, httpPort int) string {
	p := func(sub string) string { return xmlEscape(filepath.Join(dir, sub) + "/") }
	return fmt.Sprintf(`<?xml version="1.0"?>
<!-- generated by switchyard/internal/chserver -->
<yandex>
    <logger>
        <level>information</level>
        <log>%[1]s</log>
        <errorlog>%[2]s</errorlog>
        <size>100M</size>
        <count>1</count>
    </logger>
    <listen_host>127.0.0.1</listen_host>
    <tcp_port>%[3]d</tcp_port>
    <http_port>%[4]d</http_port>
    <path>%[5]s</path>
    <tmp_path>%[6]s</tmp_path>
    <user_files_path>%[7]s</user_files_path>
    <format_schema_path>%[8]s</format_schema_path>
    <users_config>%[9]s</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <timezone>UTC</timezone>
    <max_connections>1024</max_connections>
    <keep_alive_timeout>1</keep_alive_timeout>
    <max_concurrent_queries>100</max_concurrent_queries>
    <mark_cache_size>268435456</mark_cache_size>
    <uncompressed_cache_size>268435456</uncompressed_cache_size>
    <mlock_executable>false</mlock_executable>
</yandex>
`,
		xmlEscape(filepath.Join(dir, "clickhouse-server.log")),
		xmlEscape(filepath.Join(dir, "clickhouse-server.err.log")), // keep in sync with Server.errPath
		tcpPort, httpPort,
		p("data"), p("tmp"), p("user_files"), p("format_schemas"),
		xmlEscape(filepath.Join(dir, "users.xml")),
	)
}

// usersXML has one user, default, without a password, reachable from loopback only.
const usersXML = `<?xml version="1.0"?>
<!-- generated by switchyard/internal/chserver -->
<yandex>
    <profiles>
        <default>
            <max_memory_usage>4000000000</max_memory_usage>
            <!-- An idle native connection notices shutdown only when its poll
                 times out; the default of 10 s made every Stop take 10 s. -->
            <poll_interval>1</poll_interval>
        </default>
    </profiles>
    <users>
        <default>
            <password></password>
            <networks>
                <ip>127.0.0.1</ip>
                <ip>::1</ip>
            </networks>
            <profile>default</profile>
            <quota>default</quota>
        </default>
    </users>
    <quotas>
        <default>
            <interval>
                <duration>3600</duration>
                <queries>0</queries>
                <errors>0</errors>
                <result_rows>0</result_rows>
                <read_rows>0</read_rows>
                <execution_time>0</execution_time>
            </interval>
        </default>
    </quotas>
</yandex>
`

func xmlEscape(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}
