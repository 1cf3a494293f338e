package app

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/switchyard-dev/switchyard/internal/status"
)

// cmdStatus is `switchyard status`: the admin server's /api/status as a terminal view,
// refreshed every --interval until interrupted, or once with --once or --json.
func cmdStatus(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("admin", "127.0.0.1:9464", "admin server address of the running daemon (host:port or URL)")
	once := fs.Bool("once", false, "print the status once and exit")
	asJSON := fs.Bool("json", false, "print /api/status as JSON once and exit")
	interval := fs.Duration("interval", 5*time.Second, "refresh interval")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: switchyard status [flags]\n\nShow the status of a running daemon, from its admin server's /api/status.\nExit status: 0 green, 1 amber or red, 2 unreachable or bad flags.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	url := strings.TrimSuffix(*addr, "/")
	if !strings.Contains(url, "://") {
		url = "http://" + url
	}
	url += "/api/status"
	client := &http.Client{Timeout: 10 * time.Second}
	if *asJSON {
		body, err := fetch(ctx, client, url)
		if err != nil {
			fmt.Fprintf(stderr, "switchyard status: %v\n", err)
			return 2
		}
		_, _ = stdout.Write(body)
		return 0
	}
	tty := isTerminal(stdout)
	for {
		body, err := fetch(ctx, client, url)
		var r status.Report
		if err == nil {
			err = json.Unmarshal(body, &r)
		}
		if tty && !*once {
			fmt.Fprint(stdout, "\x1b[H\x1b[2J") // home and clear, for a refreshing view
		}
		code := 0
		if err != nil {
			fmt.Fprintf(stderr, "switchyard status: %v\n", err)
			code = 2
		} else {
			renderStatus(stdout, &r)
			if r.Overall != status.Green {
				code = 1
			}
		}
		if *once {
			return code
		}
		select {
		case <-ctx.Done():
			return code
		case <-time.After(*interval):
		}
	}
}

func fetch(ctx context.Context, client *http.Client, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("get %s: %s", url, resp.Status)
	}
	return body, nil
}

// renderStatus writes r as plain text: a summary line, then per pipeline its sinks with state,
// lag and SLOs.
func renderStatus(w io.Writer, r *status.Report) {
	fmt.Fprintf(w, "switchyard %s  (%d pipelines, %s)\n", strings.ToUpper(string(r.Overall)), len(r.Pipelines), r.GeneratedAt.Local().Format("15:04:05"))
	for _, p := range r.Pipelines {
		fmt.Fprintf(w, "\n%-5s %s  owner %s (%s)", strings.ToUpper(string(p.Level)), p.Name, p.Team, p.Contact)
		for _, c := range p.Contracts {
			fmt.Fprintf(w, "  %s@%s", c.Name, c.Hash)
		}
		fmt.Fprintln(w)
		if b := p.Breaker; b != nil && b.State != status.BreakerClosed {
			fmt.Fprintf(w, "      dead-letter breaker %s: %s\n", strings.ToUpper(string(b.State)), b.Reason)
		}
		if len(p.DeadLetters5m) > 0 {
			var parts []string
			for reason, n := range p.DeadLetters5m {
				parts = append(parts, fmt.Sprintf("%s=%d", reason, n))
			}
			fmt.Fprintf(w, "      dead letters (5m): %s\n", strings.Join(parts, " "))
		}
		for _, s := range p.Sinks {
			var lag int64
			var lagSec float64
			for _, pt := range s.Partitions {
				lag += pt.LagRecords
				lagSec = max(lagSec, pt.LagSeconds)
			}
			landed := "never"
			if s.LastLanded != nil {
				landed = time.Since(*s.LastLanded).Round(time.Second).String() + " ago"
			}
			fmt.Fprintf(w, "  %-5s %s (%s) %s, lag %d records / %.1fs, last landed %s\n", strings.ToUpper(string(s.Level)),
				s.Name, s.Kind, s.State, lag, lagSec, landed)
			if s.Error != "" {
				fmt.Fprintf(w, "        error: %s\n", s.Error)
			}
			for _, o := range s.SLOs {
				cur := "no events"
				if o.Current != nil {
					cur = fmt.Sprintf("%.3f%%", *o.Current*100)
				}
				fmt.Fprintf(w, "        %-12s %s of %.3g%%, budget left %.0f%%, burn 5m %.2f 1h %.2f 6h %.2f\n",
					o.Name, cur, o.Objective*100, o.BudgetRemaining*100, o.BurnRates["5m"], o.BurnRates["1h"], o.BurnRates["6h"])
			}
		}
	}
}
