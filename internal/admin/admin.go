// Package admin serves the operator endpoints: /metrics, /healthz, /readyz, the status page (/)
// and /api/status and, when asked for, /debug/pprof/. Nothing on it changes the daemon's state.
package admin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/switchyard-dev/switchyard/internal/status"
	"github.com/switchyard-dev/switchyard/internal/telemetry"
)

// Options configure the admin server.
type Options struct {
	// Address is the listen address, host:port.
	Address string
	// Metrics is served on /metrics.
	Metrics *telemetry.Metrics
	// Ready reports readiness for /readyz; nil is always ready.
	Ready func() bool
	// Stalled lists stalled partitions, one line each, for /readyz: while it lists any,
	// /readyz answers 503 with the list. nil lists none.
	Stalled func() []string
	// Tripped lists pipelines whose dead-letter breaker is tripped or probing, one line each,
	// for /readyz: while it lists any, /readyz answers 503 with the list. nil lists none.
	Tripped func() []string
	// PProf serves net/http/pprof under /debug/pprof/.
	PProf bool
	// Status, if set, is the report of /api/status and the status page at /.
	Status func() *status.Report
}

// Server is the admin HTTP server.
type Server struct {
	srv *http.Server
	ln  net.Listener
}

// Start listens on opt.Address and serves in the background. It logs a warning when the
// address it bound is not a loopback address, since nothing on it is authenticated.
func Start(opt Options, log *slog.Logger) (*Server, error) {
	ln, err := net.Listen("tcp", opt.Address)
	if err != nil {
		return nil, fmt.Errorf("admin server: listen on %s: %w", opt.Address, err)
	}
	if !loopback(ln.Addr()) {
		log.Warn("admin server listens on a non-loopback address; its endpoints are unauthenticated and reachable from the network",
			"address", opt.Address, "bound", ln.Addr().String(), "pprof", opt.PProf)
	}
	mux := http.NewServeMux()
	m := opt.Metrics
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if opt.Ready != nil && !opt.Ready() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		var problems []string
		if opt.Tripped != nil {
			if tripped := opt.Tripped(); len(tripped) > 0 {
				problems = append(problems, fmt.Sprintf("not ready: %d pipelines with a tripped dead-letter breaker\n%s", len(tripped), strings.Join(tripped, "\n")))
			}
		}
		if opt.Stalled != nil {
			if stalled := opt.Stalled(); len(stalled) > 0 {
				problems = append(problems, fmt.Sprintf("not ready: %d stalled partitions\n%s", len(stalled), strings.Join(stalled, "\n")))
			}
		}
		if len(problems) > 0 {
			http.Error(w, strings.Join(problems, "\n"), http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	if opt.Status != nil {
		mux.HandleFunc("GET /api/status", statusJSON(opt.Status))
		mux.HandleFunc("GET /{$}", statusHTML(opt.Status))
		mux.Handle("GET /status", http.RedirectHandler("/", http.StatusFound)) // where operators try first
	}
	if opt.PProf {
		mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
		mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	}
	s := &Server{srv: &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}, ln: ln}
	go func() {
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("admin server stopped", "error", err)
		}
	}()
	return s, nil
}

// loopback reports whether a bound address is a loopback one. An unspecified address
// (0.0.0.0, ::, or an empty host) binds every interface; a host name was resolved by Listen,
// so its bound IP decides.
func loopback(a net.Addr) bool {
	ta, ok := a.(*net.TCPAddr)
	return ok && ta.IP.IsLoopback()
}

// Addr is the address the server listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Close stops the server.
func (s *Server) Close(ctx context.Context) error { return s.srv.Shutdown(ctx) }
