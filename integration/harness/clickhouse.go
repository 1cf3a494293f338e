package harness

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// ClickHouseStartTimeout bounds StartClickHouse and ClickHouse.Start.
// StartClickHouseProcess uses the caller's context instead.
var ClickHouseStartTimeout = time.Minute

// clickHouseStopGrace is how long Stop waits for a clean shutdown before SIGKILL.
const clickHouseStopGrace = 30 * time.Second

// ClickHouse is a clickhouse-server (Debian's 18.16 package) on 127.0.0.1
// with user "default", no password, database "default" and server time zone
// UTC. Its methods are safe for concurrent use.
//
// 18.16 is old: batch INSERTs must name their columns, and there is no
// DateTime64, Map, Bool or JSON type.
type ClickHouse struct {
	dir      string
	bin      []string // server command without the config flag
	config   string
	logPath  string // server log
	errPath  string // server error log
	outPath  string // stdout and stderr, for failures before logging starts
	tcpPort  int
	httpPort int

	mu      sync.Mutex
	proc    *process
	version string
}

// StartClickHouse starts a server in tb.TempDir() and stops it in
// tb.Cleanup. It fails the test (tb.Fatal) when the server cannot start,
// including when clickhouse-server is not installed; the message ends with the
// tail of the server log.
func StartClickHouse(tb testing.TB) *ClickHouse {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), ClickHouseStartTimeout)
	defer cancel()
	start := time.Now()
	c, err := StartClickHouseProcess(ctx, tb.TempDir())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(c.Stop)
	tb.Logf("clickhouse %s on %s started in %s (log %s)", c.Version(), c.Addr(), time.Since(start).Round(time.Millisecond), c.LogPath())
	return c
}

// StartClickHouseProcess starts a server whose config, data and logs live in
// dir (which must exist; it is not removed). It returns once a clickhouse-go
// native connection answers SELECT version(), or fails when ctx ends or the
// server exits. The caller must call Stop. Use it from TestMain to share one
// server per package.
func StartClickHouseProcess(ctx context.Context, dir string) (*ClickHouse, error) {
	c, err := startClickHouseProcess(ctx, dir)
	if err != nil {
		return nil, fmt.Errorf("start clickhouse: %w", err)
	}
	return c, nil
}

func startClickHouseProcess(ctx context.Context, dir string) (*ClickHouse, error) {
	bin, err := clickHouseCommand()
	if err != nil {
		return nil, err
	}
	dir, err = filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	c := &ClickHouse{
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
	if err := os.WriteFile(filepath.Join(dir, "users.xml"), []byte(clickHouseUsersXML), 0o644); err != nil {
		return nil, err
	}
	// Free ports can be taken between reservation and bind; retry with
	// fresh ones when that is why the server died.
	for attempt := 1; ; attempt++ {
		ports, err := freePorts(2)
		if err != nil {
			return nil, err
		}
		c.tcpPort, c.httpPort = ports[0], ports[1]
		if err := os.WriteFile(c.config, []byte(clickHouseConfigXML(dir, c.tcpPort, c.httpPort)), 0o644); err != nil {
			return nil, err
		}
		errStart, outStart := fileSize(c.errPath), fileSize(c.outPath)
		err = c.start(ctx)
		if err == nil {
			return c, nil
		}
		inUse := logSinceMentions(c.errPath, errStart, "Address already in use") ||
			logSinceMentions(c.outPath, outStart, "Address already in use")
		if attempt < 3 && ctx.Err() == nil && inUse {
			continue
		}
		return nil, err
	}
}

// clickHouseCommand finds the server binary: clickhouse-server (Debian), or
// the single `clickhouse` binary of upstream packages.
func clickHouseCommand() ([]string, error) {
	if p, err := lookPath("clickhouse-server"); err == nil {
		return []string{p}, nil
	}
	if p, err := lookPath("clickhouse"); err == nil {
		return []string{p, "server"}, nil
	}
	// Debian installs it in /usr/sbin, which a non-login PATH may lack.
	if _, err := os.Stat("/usr/sbin/clickhouse-server"); err == nil {
		return []string{"/usr/sbin/clickhouse-server"}, nil
	}
	return nil, errors.New("clickhouse-server not found on PATH or in /usr/sbin; install it with `apt-get install -y clickhouse-server clickhouse-client` (.ci/run does)")
}

func (c *ClickHouse) start(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.proc != nil && !c.proc.exited() {
		return errors.New("already running")
	}
	argv := append(append([]string{}, c.bin...), "--config-file="+c.config)
	// The server writes its own logs as configured; stdout and stderr
	// catch what it prints before that (bad config, missing binary parts).
	p, err := startProcess("clickhouse", c.dir, c.outPath, argv)
	if err != nil {
		return err
	}
	c.proc = p

	conn, err := clickhouse.Open(c.options())
	if err != nil {
		p.stop(0)
		return fmt.Errorf("open probe connection: %w", err)
	}
	defer conn.Close()
	var version string
	err = p.waitReady(ctx, 50*time.Millisecond, func(ctx context.Context) error {
		return conn.QueryRow(ctx, "SELECT version()").Scan(&version)
	})
	if err != nil {
		p.stop(0)
		return withLogTail(fmt.Errorf("server on %s: %w", c.Addr(), err), c.outPath, c.errPath)
	}
	c.version = version
	return nil
}

func (c *ClickHouse) options() *clickhouse.Options {
	return &clickhouse.Options{
		Addr:        []string{c.Addr()},
		Auth:        clickhouse.Auth{Database: "default", Username: "default"},
		DialTimeout: 2 * time.Second,
	}
}

// Addr is the native protocol address ("127.0.0.1:port") for clickhouse-go.
// It stays the same across Stop and Start.
func (c *ClickHouse) Addr() string { return "127.0.0.1:" + strconv.Itoa(c.tcpPort) }

// HTTPAddr is the HTTP interface address ("127.0.0.1:port").
func (c *ClickHouse) HTTPAddr() string { return "127.0.0.1:" + strconv.Itoa(c.httpPort) }

// Version is the server version reported at the last start, e.g. "18.16.1".
func (c *ClickHouse) Version() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.version
}

// LogPath is the server log file.
func (c *ClickHouse) LogPath() string { return c.logPath }

// Stop shuts the server down (SIGTERM, then SIGKILL after 30 s) and returns
// once it has exited. Data and ports are kept for Start. Stopping a stopped
// server does nothing.
func (c *ClickHouse) Stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.proc != nil {
		c.proc.stop(clickHouseStopGrace)
	}
}

// Start starts a stopped server again on the same ports with the same data,
// for outage tests. It returns once the server answers and fails the test if
// it cannot start within ClickHouseStartTimeout. Starting a running server
// fails the test.
func (c *ClickHouse) Start(tb testing.TB) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), ClickHouseStartTimeout)
	defer cancel()
	for _, port := range []int{c.tcpPort, c.httpPort} {
		if err := waitPortFree(ctx, port); err != nil {
			tb.Fatalf("start clickhouse: %v", err)
		}
	}
	if err := c.start(ctx); err != nil {
		tb.Fatalf("start clickhouse: %v", err)
	}
}

// Open returns a clickhouse-go native connection to database "default",
// closed in tb.Cleanup.
func (c *ClickHouse) Open(tb testing.TB) driver.Conn {
	tb.Helper()
	conn, err := clickhouse.Open(c.options())
	if err != nil {
		tb.Fatalf("open clickhouse connection: %v", err)
	}
	tb.Cleanup(func() { conn.Close() })
	return conn
}

// Query runs sql over the HTTP interface and returns the result rows in
// TabSeparated form, one string per cell with escapes undone (NULL is `\N`).
// Statements without a result (DDL, INSERT) return no rows. It fails the test
// on any error.
func (c *ClickHouse) Query(tb testing.TB, sql string) [][]string {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rows, err := c.QueryContext(ctx, sql)
	if err != nil {
		tb.Fatal(err)
	}
	return rows
}

// QueryContext is Query for callers without a testing.TB.
func (c *ClickHouse) QueryContext(ctx context.Context, sql string) ([][]string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+c.HTTPAddr()+"/?default_format=TabSeparated", strings.NewReader(sql))
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
	return parseTSV(body), nil
}

// parseTSV splits TabSeparated output into unescaped cells.
func parseTSV(b []byte) [][]string {
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

// clickHouseConfigXML is a minimal server config that 18.16 accepts: only
// the native and HTTP ports on 127.0.0.1 (no interserver port), everything
// under dir, no query_log, small caches.
func clickHouseConfigXML(dir string, tcpPort, httpPort int) string {
	p := func(sub string) string { return xmlEscape(filepath.Join(dir, sub) + "/") }
	return fmt.Sprintf(`<?xml version="1.0"?>
<!-- generated by switchyard/integration/harness -->
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
		xmlEscape(filepath.Join(dir, "clickhouse-server.err.log")), // keep in sync with ClickHouse.errPath
		tcpPort, httpPort,
		p("data"), p("tmp"), p("user_files"), p("format_schemas"),
		xmlEscape(filepath.Join(dir, "users.xml")),
	)
}

// clickHouseUsersXML has one user, default, without a password, reachable
// from loopback only.
const clickHouseUsersXML = `<?xml version="1.0"?>
<!-- generated by switchyard/integration/harness -->
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
