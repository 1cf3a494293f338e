package config

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// SLO is a pipeline's service-level objectives, measured by the daemon per sink (see
// docs/slo.md): freshness (events land within a threshold of their event time) and
// completeness (consumed events land, or are filtered or unrouted on purpose, rather than
// being dead-lettered).
type SLO struct {
	Freshness    Freshness    `yaml:"freshness" doc:"Share of landed events that land within threshold of their event time."`
	Completeness Completeness `yaml:"completeness" doc:"Share of consumed events that land (or are filtered or unrouted on purpose) rather than being dead-lettered."`
	Window       Period       `yaml:"window" doc:"Period the error budget is counted over; Go duration or whole days (28d)." default:"28d"`
}

// Freshness is the freshness objective.
type Freshness struct {
	Threshold time.Duration `yaml:"threshold" doc:"Longest an event may take from its event time to landing and still count as fresh." default:"5m"`
	Objective Percent       `yaml:"objective" doc:"Share of landed events that must be fresh, as a percentage in (0%, 100%)." default:"99%"`
}

// Completeness is the completeness objective.
type Completeness struct {
	Objective Percent `yaml:"objective" doc:"Share of consumed events that must land (or be filtered or unrouted on purpose), as a percentage in (0%, 100%)." default:"99.9%"`
}

// SinkSLO overrides its pipeline's SLO for one sink: every key left out keeps the pipeline's
// value.
type SinkSLO struct {
	Freshness    SinkFreshness    `yaml:"freshness" doc:"Freshness objective of this sink; keys left out keep the pipeline's."`
	Completeness SinkCompleteness `yaml:"completeness" doc:"Completeness objective of this sink; keys left out keep the pipeline's."`
	Window       Period           `yaml:"window" doc:"Error-budget period of this sink; the pipeline's when left out."`
}

// SinkFreshness overrides the pipeline's freshness objective.
type SinkFreshness struct {
	Threshold time.Duration `yaml:"threshold" doc:"Freshness threshold of this sink; the pipeline's when left out."`
	Objective Percent       `yaml:"objective" doc:"Freshness objective of this sink; the pipeline's when left out."`
}

// SinkCompleteness overrides the pipeline's completeness objective.
type SinkCompleteness struct {
	Objective Percent `yaml:"objective" doc:"Completeness objective of this sink; the pipeline's when left out."`
}

// SLOFor returns the objectives of sink sc of p: the pipeline's, with the keys sc.SLO sets.
func (p *Pipeline) SLOFor(sc *Sink) SLO {
	s := p.SLO
	o := sc.SLO
	if o.Freshness.Threshold > 0 {
		s.Freshness.Threshold = o.Freshness.Threshold
	}
	if o.Freshness.Objective > 0 {
		s.Freshness.Objective = o.Freshness.Objective
	}
	if o.Completeness.Objective > 0 {
		s.Completeness.Objective = o.Completeness.Objective
	}
	if o.Window > 0 {
		s.Window = o.Window
	}
	return s
}

// Percent is a percentage in (0, 100), written "99%" or "99.9%" (the % is optional).
type Percent float64

// Ratio is p as a fraction: 0.999 for 99.9%.
// It is rounded to 12 decimals, so that 99.9% is exactly the float64 nearest 0.999.
func (p Percent) Ratio() float64 { return math.Round(float64(p)*1e10) / 1e12 }

// String formats p as "99.9%", or "" when unset (zero).
func (p Percent) String() string {
	if p == 0 {
		return ""
	}
	return strconv.FormatFloat(float64(p), 'f', -1, 64) + "%"
}

// MarshalText implements encoding.TextMarshaler with String's format.
func (p Percent) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// UnmarshalText parses "99.9%"; the value must lie strictly between 0% and 100%. An empty
// text leaves p unset (zero).
func (p *Percent) UnmarshalText(text []byte) error {
	if len(text) == 0 {
		*p = 0
		return nil
	}
	s := strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(string(text)), "%"))
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return fmt.Errorf("%q is not a percentage (use e.g. \"99%%\" or \"99.9%%\")", text)
	}
	if v <= 0 || v >= 100 {
		return fmt.Errorf("%q must be between 0%% and 100%%, exclusive", text)
	}
	*p = Percent(v)
	return nil
}

// Period is a duration that may also be written in whole days: "28d", "7d", or a Go duration
// such as "36h".
type Period time.Duration

// String formats p in days when it is a whole number of them, else as a Go duration; "" when
// unset (zero).
func (p Period) String() string {
	const day = 24 * time.Hour
	if p == 0 {
		return ""
	}
	if d := time.Duration(p); d > 0 && d%day == 0 {
		return strconv.FormatInt(int64(d/day), 10) + "d"
	}
	return time.Duration(p).String()
}

// MarshalText implements encoding.TextMarshaler with String's format.
func (p Period) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// UnmarshalText parses "28d" or a Go duration; it must be positive. An empty text leaves p
// unset (zero).
func (p *Period) UnmarshalText(text []byte) error {
	s := strings.TrimSpace(string(text))
	if s == "" {
		*p = 0
		return nil
	}
	var d time.Duration
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil || days <= 0 {
			return fmt.Errorf("%q is not a period (use whole days such as \"28d\", or a duration such as \"36h\")", s)
		}
		d = time.Duration(days) * 24 * time.Hour
	} else {
		v, err := time.ParseDuration(s)
		if err != nil || v <= 0 {
			return fmt.Errorf("%q is not a period (use whole days such as \"28d\", or a duration such as \"36h\")", s)
		}
		d = v
	}
	*p = Period(d)
	return nil
}
