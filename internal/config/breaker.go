package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Breaker is a pipeline's dead-letter breaker (pipelines/breaker.go): it trips when the share
// of events dead-lettered over a sliding window passes max_ratio, pauses every lane of the
// pipeline for cooldown, then lets one probe batch decide whether to resume.
type Breaker struct {
	Enabled   bool          `yaml:"enabled" doc:"Run the breaker; false lets a poison storm dead-letter every event and commit its offsets as it goes." default:"true"`
	MaxRatio  Ratio         `yaml:"max_ratio" doc:"Share of a sink lane's events over window that the lane may dead-letter; more trips the breaker. Decode and validation failures count in the first sink's lane, which dead-letters them for the pipeline; route, transform and sink failures in the lane of their sink. A percentage (\"50%\") or a fraction (0.5), above 0 and at most 1." default:"50%"`
	Window    time.Duration `yaml:"window" doc:"Sliding window the ratio is measured over, in 20 steps." default:"1m"`
	MinEvents int           `yaml:"min_events" doc:"Fewest events a lane must have finished within window before its ratio can trip the breaker, so a few bad events on a quiet pipeline do not." default:"1000"`
	Cooldown  time.Duration `yaml:"cooldown" doc:"How long a tripped breaker holds the pipeline before it lets one probe batch through: if the probe's dead-letter ratio is at most max_ratio the pipeline resumes, otherwise the breaker trips again for another cooldown." default:"5m"`
}

// Ratio is a share in (0, 1], written as a percentage ("50%", "12.5%") or as a fraction (0.5).
// A bare number above 1 is refused rather than guessed at: write "50%" or 0.5.
type Ratio float64

// String formats r as a percentage, "50%"; "" when unset (zero).
func (r Ratio) String() string {
	if r == 0 {
		return ""
	}
	return strconv.FormatFloat(float64(r)*100, 'f', -1, 64) + "%"
}

// MarshalText implements encoding.TextMarshaler with String's format.
func (r Ratio) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// UnmarshalText parses "50%" or 0.5. An empty text leaves r unset (zero).
func (r *Ratio) UnmarshalText(text []byte) error {
	s := strings.TrimSpace(string(text))
	if s == "" {
		*r = 0
		return nil
	}
	pct, isPct := strings.CutSuffix(s, "%")
	v, err := strconv.ParseFloat(strings.TrimSpace(pct), 64)
	if err != nil {
		return fmt.Errorf("%q is not a ratio (use a percentage such as \"50%%\" or a fraction such as 0.5)", s)
	}
	if isPct {
		v /= 100
	} else if v > 1 {
		return fmt.Errorf("%q is above 1: write a percentage with its %% sign (\"%s%%\") or a fraction (%s)", s, s, strconv.FormatFloat(v/100, 'f', -1, 64))
	}
	if v <= 0 || v > 1 {
		return fmt.Errorf("%q must be above 0%% and at most 100%%", s)
	}
	*r = Ratio(v)
	return nil
}
