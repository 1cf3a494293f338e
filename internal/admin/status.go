package admin

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"html/template"
	"math"
	"net/http"
	"time"

	"github.com/switchyard-dev/switchyard/internal/status"
)

//go:embed templates/status.html
var templates embed.FS

// pageRefresh is how often the status page reloads itself.
const pageRefresh = 5 * time.Second

var statusPage = template.Must(template.New("status.html").Funcs(template.FuncMap{
	"pct": func(f float64) string { return trimFloat(f*100, 3) + "%" },
	"pctp": func(f *float64) string {
		if f == nil {
			return "no events"
		}
		return trimFloat(*f*100, 3) + "%"
	},
	"num": func(f float64) string { return trimFloat(f, 2) },
	"secs": func(f float64) string {
		return (time.Duration(f * float64(time.Second))).Round(time.Second / 10).String()
	},
	"ago": func(t *time.Time, now time.Time) string {
		if t == nil {
			return "never"
		}
		return now.Sub(*t).Round(time.Second).String() + " ago"
	},
	"refresh": func() int { return int(pageRefresh / time.Second) },
}).ParseFS(templates, "templates/status.html"))

func trimFloat(f float64, prec int) string {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return fmt.Sprint(f)
	}
	return fmt.Sprint(math.Round(f*math.Pow10(prec)) / math.Pow10(prec))
}

// statusJSON serves /api/status: the report as JSON (see docs/status.md).
func statusJSON(report func() *status.Report) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(report())
	}
}

// statusHTML serves the status page: the report rendered on the server, reloading itself.
func statusHTML(report func() *status.Report) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		var buf bytes.Buffer
		if err := statusPage.Execute(&buf, report()); err != nil {
			http.Error(w, "render status page: "+err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write(buf.Bytes())
	}
}
