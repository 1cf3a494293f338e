package clickhouse

import (
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard-dev/switchyard/internal/event"
	"github.com/switchyard-dev/switchyard/sinks"
	"github.com/switchyard-dev/switchyard/sinks/sinktest"
)

// stallProxy forwards TCP connections to a server until Stall: from then on it forwards
// nothing in either direction (the connections stay open, as with a server that stopped
// answering), and connections accepted meanwhile are never answered. Resume closes every
// connection that saw the stall, without forwarding what was held, and forwards new ones.
type stallProxy struct {
	lis    net.Listener
	target string

	mu      sync.Mutex
	stalled bool
	conns   []net.Conn
}

func newStallProxy(t *testing.T, target string) *stallProxy {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &stallProxy{lis: lis, target: target}
	t.Cleanup(func() {
		lis.Close()
		p.Resume()
	})
	go p.serve()
	return p
}

func (p *stallProxy) Addr() string { return p.lis.Addr().String() }

func (p *stallProxy) serve() {
	for {
		c, err := p.lis.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		p.conns = append(p.conns, c)
		stalled := p.stalled
		p.mu.Unlock()
		if stalled {
			go io.Copy(io.Discard, c) //nolint:errcheck // held until Resume closes it
			continue
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, s)
		p.mu.Unlock()
		go p.pipe(s, c)
		go p.pipe(c, s)
	}
}

// pipe copies src to dst, dropping what it reads while the proxy is stalled.
func (p *stallProxy) pipe(dst, src net.Conn) {
	defer dst.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		p.mu.Lock()
		stalled := p.stalled
		p.mu.Unlock()
		if n > 0 && !stalled {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *stallProxy) Stall() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stalled = true
}

func (p *stallProxy) Resume() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.stalled {
		return
	}
	for _, c := range p.conns {
		c.Close()
	}
	p.conns, p.stalled = nil, false
}

// TestSink_retries_on_timeout: the server stops answering on the sink's open connections.
// A write that must first look up landed offsets (records redelivered at or below what the
// sink already wrote), and one of fresh records (an INSERT), each return a transient error
// within about insert_timeout instead of waiting for the driver's five-minute read timeout;
// once the server answers again, retries land every record exactly once.
func TestSink_retries_on_timeout(t *testing.T) {
	const timeout = 2 * time.Second
	proxy := newStallProxy(t, server.Addr())
	table := newTable(t)
	cfg := testConfig(table)
	cfg.Addresses = []string{proxy.Addr()}
	cfg.InsertTimeout = timeout
	cfg.DialTimeout = timeout
	s := openSink(t, cfg, testDeps(t, sinktest.Schema))
	recs := sinktest.Records("src-stall", "stall", 150, 1)
	if err := write(t, s, recs[:50]...); err != nil {
		t.Fatalf("write before the stall: %v", err)
	}

	proxy.Stall()
	for _, tc := range []struct {
		what string
		recs []*event.Record
	}{
		{"redelivered records (offset look-up)", recs[25:100]},
		{"fresh records (insert)", recs[100:]},
	} {
		start := time.Now()
		err := write(t, s, tc.recs...)
		took := time.Since(start)
		var be *sinks.BatchError
		switch {
		case err == nil:
			t.Fatalf("%s: write to a stalled server succeeded", tc.what)
		case sinks.IsPermanent(err) || errors.As(err, &be):
			t.Fatalf("%s: got %v, want a transient error", tc.what, err)
		case took > 4*timeout:
			t.Fatalf("%s: write took %v with insert_timeout %v (%v)", tc.what, took, timeout, err)
		case !strings.Contains(err.Error(), "deadline") && !strings.Contains(err.Error(), "timeout"):
			t.Fatalf("%s: error %q does not say it timed out", tc.what, err)
		}
		t.Logf("%s: %v after %v", tc.what, err, took.Round(time.Millisecond))
	}
	proxy.Resume()

	deadline := time.Now().Add(time.Minute)
	for _, batch := range [][]*event.Record{recs[25:100], recs[100:]} {
		for {
			err := write(t, s, batch...)
			if err == nil {
				break
			}
			if sinks.IsPermanent(err) || time.Now().After(deadline) {
				t.Fatalf("write after the stall: %v", err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	ids := readColumn(t, table, "id")
	count := map[string]int{}
	for _, id := range ids {
		count[id]++
	}
	for _, r := range recs {
		if n := count[sinktest.ID(r)]; n != 1 {
			t.Errorf("record %s landed %d times, want once", sinktest.ID(r), n)
		}
	}
	if len(ids) != len(recs) {
		t.Errorf("%d rows in the table, want %d", len(ids), len(recs))
	}
}
