// Package telemetry holds Switchyard's Prometheus metrics and the functions that both log and
// count an operational event, so logs and metrics never disagree.
package telemetry

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics is every metric the daemon exports. Create one per process with New.
type Metrics struct {
	Registry *prometheus.Registry

	Consumed     *prometheus.CounterVec   // pipeline
	Unrouted     *prometheus.CounterVec   // pipeline
	Landed       *prometheus.CounterVec   // pipeline, sink
	DeadLettered *prometheus.CounterVec   // pipeline, reason
	WriteErrors  *prometheus.CounterVec   // pipeline, sink
	Lag          *prometheus.GaugeVec     // pipeline, sink, topic, partition
	FetchLag     *prometheus.GaugeVec     // pipeline, sink, topic, partition
	Stalled      *prometheus.GaugeVec     // pipeline, sink, topic, partition
	Redelivered  *prometheus.CounterVec   // pipeline, sink
	DLQFailures  *prometheus.CounterVec   // pipeline
	BatchRecords *prometheus.HistogramVec // pipeline, sink
	WriteSeconds *prometheus.HistogramVec // pipeline, sink
	LandLatency  *prometheus.HistogramVec // pipeline, sink
	SinkUp       *prometheus.GaugeVec     // pipeline, sink
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
		Landed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_events_landed_total",
			Help: "Events a sink confirmed as written.",
		}, []string{"pipeline", "sink"}),
		DeadLettered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_events_dead_lettered_total",
			Help: "Events written to the dead-letter topic, by reason (decode, validate, route, sink).",
		}, []string{"pipeline", "reason"}),
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
	}
	m.Registry.MustRegister(m.Consumed, m.Unrouted, m.Landed, m.DeadLettered, m.WriteErrors, m.Lag,
		m.FetchLag, m.Stalled, m.Redelivered, m.DLQFailures, m.BatchRecords, m.WriteSeconds, m.LandLatency, m.SinkUp,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}
