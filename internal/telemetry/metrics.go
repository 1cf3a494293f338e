// Package telemetry holds Switchyard's Prometheus metrics and the functions that both log and
// count an operational event, so logs and metrics never disagree.
package telemetry

import (
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	dto "github.com/prometheus/client_model/go"
)

// Metrics is every metric the daemon exports. Create one per process with New.
type Metrics struct {
	Registry *prometheus.Registry

	Consumed          *prometheus.CounterVec   // pipeline
	Unrouted          *prometheus.CounterVec   // pipeline
	SharedValidations *prometheus.CounterVec   // pipeline
	SharedDecodes     *prometheus.CounterVec   // pipeline
	PaceSeconds       *prometheus.CounterVec   // pipeline, sink
	DecodesSkipped    *prometheus.CounterVec   // pipeline, sink
	FetchesShared     *prometheus.CounterVec   // pipeline, sink
	Landed            *prometheus.CounterVec   // pipeline, sink
	DeadLettered      *prometheus.CounterVec   // pipeline, reason
	WriteErrors       *prometheus.CounterVec   // pipeline, sink
	Lag               *prometheus.GaugeVec     // pipeline, sink, topic, partition
	FetchLag          *prometheus.GaugeVec     // pipeline, sink, topic, partition
	Stalled           *prometheus.GaugeVec     // pipeline, sink, topic, partition
	Redelivered       *prometheus.CounterVec   // pipeline, sink
	DLQFailures       *prometheus.CounterVec   // pipeline
	BatchRecords      *prometheus.HistogramVec // pipeline, sink
	WriteSeconds      *prometheus.HistogramVec // pipeline, sink
	LandLatency       *prometheus.HistogramVec // pipeline, sink
	SinkUp            *prometheus.GaugeVec     // pipeline, sink

	Freshness      *prometheus.HistogramVec // pipeline, sink
	SLOEvents      *prometheus.CounterVec   // pipeline, sink, slo
	SLOGood        *prometheus.CounterVec   // pipeline, sink, slo
	LagSeconds     *prometheus.GaugeVec     // pipeline, sink, topic, partition
	CommitFailures *prometheus.CounterVec   // pipeline, sink
	BuildInfo      *prometheus.GaugeVec     // version, commit, go
	BreakerState   *prometheus.GaugeVec     // pipeline
	BreakerTrips   *prometheus.CounterVec   // pipeline

	slos *sloCollector // switchyard_slo_objective, switchyard_slo_burn_rate
}

// New registers every metric, plus the Go and process collectors, on a fresh registry.
func New() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		Consumed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_events_consumed_total",
			Help: "Events read from source topics, counted once per pipeline.",
		}, []string{"pipeline"}),
		Unrouted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_events_unrouted_total",
			Help: "Valid events that matched no route; they are acknowledged and dropped on purpose.",
		}, []string{"pipeline"}),
		SharedValidations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_validations_shared_total",
			Help: "Validations a sink lane skipped because another lane of the pipeline had already found the event valid (lanes moving together validate each event once).",
		}, []string{"pipeline"}),
		SharedDecodes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_decodes_shared_total",
			Help: "Events a sink lane read from the message another lane of the pipeline had decoded and found valid, instead of decoding them again (while that lane still held the message).",
		}, []string{"pipeline"}),
		PaceSeconds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_lane_pace_seconds_total",
			Help: "Seconds a sink lane's batches waited for a slower live lane of the same pipeline to come within half the verdict ring (lanes moving together validate each event once); a lane stalled for longer than the patience is not waited for.",
		}, []string{"pipeline", "sink"}),
		DecodesSkipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_decodes_skipped_total",
			Help: "Events a sink lane routed without decoding them, because another lane of the pipeline had found them valid and nothing of this lane reads decoded messages (its sink writes the original bytes, on routes without conditions or transforms).",
		}, []string{"pipeline", "sink"}),
		FetchesShared: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_records_fetch_shared_total",
			Help: "Records a sink lane took from the fetches of another lane of the pipeline instead of fetching them itself (lanes moving together fetch each record once).",
		}, []string{"pipeline", "sink"}),
		Landed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_events_landed_total",
			Help: "Events a sink confirmed as written.",
		}, []string{"pipeline", "sink"}),
		DeadLettered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_events_dead_lettered_total",
			Help: "Events written to the dead-letter topic, by reason (decode, validate, route, sink), route and sink (empty when the event failed before routing).",
		}, []string{"pipeline", "reason", "route", "sink"}),
		WriteErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_sink_write_errors_total",
			Help: "Failed write attempts (transient errors that were retried).",
		}, []string{"pipeline", "sink"}),
		Lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "switchyard_consumer_lag_records",
			Help: "Records between the partition's high watermark and the lane's committed offset: what a restart would consume again (as kafka-consumer-groups shows it), per sink lane.",
		}, []string{"pipeline", "sink", "topic", "partition"}),
		FetchLag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "switchyard_consumer_fetch_lag_records",
			Help: "Records between the partition's high watermark and the next record to fetch, per sink lane; fetched records waiting in the lane are not counted.",
		}, []string{"pipeline", "sink", "topic", "partition"}),
		Stalled: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "switchyard_partition_stalled",
			Help: "1 while the lane's committed offset of the partition has not moved for source.stall_after although records wait behind it, else 0.",
		}, []string{"pipeline", "sink", "topic", "partition"}),
		Redelivered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_batches_redelivered_total",
			Help: "Batches a lane handed back to the source for redelivery (a sink write or a dead-letter write failed).",
		}, []string{"pipeline", "sink"}),
		DLQFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_dead_letter_write_failures_total",
			Help: "Failed writes of a batch's dead letters; the batch is redelivered and its partition commits nothing past it meanwhile.",
		}, []string{"pipeline"}),
		BatchRecords: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "switchyard_sink_batch_records",
			Help:    "Records per batch written to a sink.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 9),
		}, []string{"pipeline", "sink"}),
		WriteSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "switchyard_sink_write_seconds",
			Help:    "Duration of successful batch writes.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 12),
		}, []string{"pipeline", "sink"}),
		LandLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "switchyard_land_latency_seconds",
			Help:    "From the Kafka record timestamp to the sink confirming the write.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2.5, 12),
		}, []string{"pipeline", "sink"}),
		SinkUp: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "switchyard_sink_up",
			Help: "1 while the sink's last write (or start-up) succeeded, 0 while it is failing.",
		}, []string{"pipeline", "sink"}),
		Freshness: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "switchyard_event_freshness_seconds",
			Help:    "From the event time (the pipeline's event_time_field, else the Kafka record timestamp) to the sink confirming the write.",
			Buckets: prometheus.ExponentialBuckets(0.1, 3, 12), // 0.1s to about 5h
		}, []string{"pipeline", "sink"}),
		SLOEvents: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_slo_events_total",
			Help: "Events counted by an SLO: freshness counts landed events, completeness events of the sink's lane that reached an outcome (landed, filtered, unrouted or dead-lettered).",
		}, []string{"pipeline", "sink", "slo"}),
		SLOGood: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_slo_good_events_total",
			Help: "Events that met an SLO: freshness, landed within the threshold of their event time; completeness, landed, filtered or unrouted rather than dead-lettered.",
		}, []string{"pipeline", "sink", "slo"}),
		LagSeconds: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "switchyard_consumer_lag_seconds",
			Help: "Age (by Kafka record timestamp) of the oldest record the lane fetched and has not landed yet; 0 with nothing pending. Updated every source.lag_interval.",
		}, []string{"pipeline", "sink", "topic", "partition"}),
		CommitFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_offset_commit_failures_total",
			Help: "Failed offset commits of a lane; the offsets are committed again at the next interval.",
		}, []string{"pipeline", "sink"}),
		BuildInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "switchyard_build_info",
			Help: "Always 1; the labels say which build is running.",
		}, []string{"version", "commit", "go"}),
		BreakerState: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "switchyard_pipeline_breaker_state",
			Help: "State of the pipeline's dead-letter breaker: 0 closed (consuming), 1 open (tripped: no lane consumes or commits), 2 half-open (one probe batch is being tried).",
		}, []string{"pipeline"}),
		BreakerTrips: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_pipeline_breaker_trips_total",
			Help: "Times the pipeline's dead-letter breaker tripped, including trips again after a probe batch that was still poisoned.",
		}, []string{"pipeline"}),
		slos: newSLOCollector(),
	}
	v, commit, goVersion := Build()
	m.BuildInfo.WithLabelValues(v, commit, goVersion).Set(1)
	m.Registry.MustRegister(m.Freshness, m.SLOEvents, m.SLOGood, m.LagSeconds, m.CommitFailures, m.BuildInfo, m.slos,
		m.BreakerState, m.BreakerTrips)
	m.Registry.MustRegister(m.Consumed, m.Unrouted, m.SharedValidations, m.SharedDecodes, m.PaceSeconds, m.DecodesSkipped, m.FetchesShared, m.Landed, m.DeadLettered, m.WriteErrors, m.Lag,
		m.FetchLag, m.Stalled, m.Redelivered, m.DLQFailures, m.BatchRecords, m.WriteSeconds, m.LandLatency, m.SinkUp,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// buildInfo is the version, VCS revision and Go version of the running binary; version is
// "dev" and commit "unknown" when the build did not record them.
// Build reports the module version ("dev" for a build from a checkout), the VCS revision
// ("unknown" when the binary carries none, e.g. `go install ...@version`, with "-dirty"
// appended for a modified tree) and the Go version, from the binary's embedded build info.
func Build() (version, commit, goVersion string) {
	version, commit, goVersion = "dev", "unknown", "unknown"
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return
	}
	goVersion = bi.GoVersion
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		version = v
	}
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && s.Value != "" {
			commit = s.Value
		}
	}
	for _, s := range bi.Settings {
		if s.Key == "vcs.modified" && s.Value == "true" && commit != "unknown" {
			commit += "-dirty"
		}
	}
	return
}

// DeadLetteredCount is the sum of switchyard_events_dead_lettered_total over every route and
// sink of pipeline with reason, for progress lines and tests.
func (m *Metrics) DeadLetteredCount(pipeline, reason string) float64 {
	ch := make(chan prometheus.Metric, 64)
	go func() { m.DeadLettered.Collect(ch); close(ch) }()
	var sum float64
	for metric := range ch {
		var d dto.Metric
		if metric.Write(&d) != nil {
			continue
		}
		var p, r string
		for _, l := range d.GetLabel() {
			switch l.GetName() {
			case "pipeline":
				p = l.GetValue()
			case "reason":
				r = l.GetValue()
			}
		}
		if p == pipeline && r == reason {
			sum += d.GetCounter().GetValue()
		}
	}
	return sum
}

// SetBuild replaces the version and commit labels of switchyard_build_info, for a version and
// commit set at build time (-ldflags) that the module build info does not carry.
func (m *Metrics) SetBuild(version, commit string) {
	_, _, goVersion := Build()
	m.BuildInfo.Reset()
	m.BuildInfo.WithLabelValues(version, commit, goVersion).Set(1)
}
