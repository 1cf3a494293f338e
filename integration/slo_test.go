package integration

import (
	"fmt"
	"testing"
	"time"

	"github.com/switchyard-dev/switchyard/integration/harness"
)

// TestOps_lag_in_records_and_seconds_rises_while_clickhouse_is_down stops ClickHouse while
// records arrive: switchyard_consumer_lag_records reaches the number waiting and
// switchyard_consumer_lag_seconds (the age of the oldest record not landed) keeps rising; once
// ClickHouse is back both return to 0 and the SLO counters have counted every event.
func TestOps_lag_in_records_and_seconds_rises_while_clickhouse_is_down(t *testing.T) {
	ch := harness.StartClickHouse(t)
	topic := uniqueName(t, "bids")
	kafka.CreateTopic(t, topic, 2)
	kafka.CreateTopic(t, topic+"-dlq", 1)
	config := writeConfig(t, fmt.Sprintf(opsConfig, topic, ch.Addr()))
	logPath := daemonLogPath(t)
	d := startDaemon(t, config, logPath)
	t.Cleanup(d.kill)
	addr := adminAddr(t, logPath)
	lane := []string{`pipeline="bids"`, `sink="olap"`}
	waitFor(t, time.Minute, "both partitions reporting lag 0 in records and seconds", func() bool {
		lag, n := scrape(t, addr, "switchyard_consumer_lag_records", lane...)
		secs, ns := scrape(t, addr, "switchyard_consumer_lag_seconds", lane...)
		return n == 2 && ns == 2 && lag == 0 && secs == 0
	})

	ch.Stop()
	const n = 300
	p := produceBids(t, topic, n, 7)
	waitFor(t, time.Minute, fmt.Sprintf("the lag to reach %d records and some seconds", n), func() bool {
		lag, _ := scrape(t, addr, "switchyard_consumer_lag_records", lane...)
		secs, _ := scrape(t, addr, "switchyard_consumer_lag_seconds", lane...)
		return lag == n && secs > 0
	})
	first, _ := scrape(t, addr, "switchyard_consumer_lag_seconds", lane...)
	waitFor(t, 30*time.Second, "the lag in seconds to keep rising", func() bool {
		secs, _ := scrape(t, addr, "switchyard_consumer_lag_seconds", lane...)
		return secs >= first+2
	})

	ch.Start(t)
	waitLanded(t, ch, len(p.valid), 2*time.Minute, logPath)
	waitFor(t, time.Minute, "the lag to return to 0 in records and seconds", func() bool {
		lag, _ := scrape(t, addr, "switchyard_consumer_lag_records", lane...)
		secs, _ := scrape(t, addr, "switchyard_consumer_lag_seconds", lane...)
		return lag == 0 && secs == 0
	})
	waitFor(t, 30*time.Second, "completeness to count every event", func() bool {
		total, _ := scrape(t, addr, "switchyard_slo_events_total", append(lane, `slo="completeness"`)...)
		good, _ := scrape(t, addr, "switchyard_slo_good_events_total", append(lane, `slo="completeness"`)...)
		return total == n && good == float64(n-len(p.invalid))
	})
}
