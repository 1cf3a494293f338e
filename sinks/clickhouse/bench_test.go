package clickhouse

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bufbuild/protocompile"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/switchyard-dev/switchyard/internal/event"
)

const benchBatch = 5000

// bidPlaced compiles the real auctions.v1.BidPlaced contract from contracts/.
func bidPlaced(b testing.TB) protoreflect.MessageDescriptor {
	c := protocompile.Compiler{Resolver: protocompile.WithStandardImports(&protocompile.SourceResolver{ImportPaths: []string{"../../contracts"}})}
	files, err := c.Compile(context.Background(), "auctions/v1/bid_placed.proto")
	if err != nil {
		b.Fatalf("compile BidPlaced: %v", err)
	}
	return files[0].Messages().ByName("BidPlaced")
}

// bidRecords returns n BidPlaced records as the engine hands them: hyperpb messages decoded
// from the wire, spread over 4 partitions.
func bidRecords(b testing.TB, md protoreflect.MessageDescriptor, n int) []*event.Record {
	base := time.Date(2026, 11, 26, 20, 0, 0, 0, time.UTC)
	recs := make([]*event.Record, n)
	for i := range recs {
		js := fmt.Sprintf(`{"event_id": "8f0c6d3e-0d5b-4b8e-9a51-%012d", "occurred_at": %q,
			"auction_id": "1b4e28ba-2fa1-11d2-883f-0016d3cca427", "lot_id": "6fa459ea-ee8a-3ca4-894e-db77e160355e",
			"bidder_id": "16fd2706-8baf-433b-82eb-8c7fada847da", "bidder_email": "bidder%d@example.com",
			"amount": {"currency_code": "EUR", "units": "%d", "nanos": 500000000},
			"source": "SOURCE_LIVE_BUTTON", "sequence": "%d", "quantity": 1, "time_remaining": "%ds",
			"client_clock_skew_ms": "-%d"%s}`,
			i, base.Add(time.Duration(i)*time.Millisecond).Format(time.RFC3339Nano), i%1000, 10+i%500, i+1, 60-i%60, i%250,
			map[bool]string{true: `, "promo_code": "WINTER", "max_auto_bid": {"currency_code": "EUR", "units": "900"}`, false: ""}[i%10 == 0])
		recs[i] = record("auctions.bids", int32(i%4), int64(i), base, asHyper(b, fromJSON(b, md, js)))
	}
	return recs
}

// serverCPU returns the CPU time of the test's clickhouse-server process (found by its
// config file next to its log), or -1 when it cannot be read.
func serverCPU() time.Duration {
	config := filepath.Join(filepath.Dir(server.LogPath()), "config.xml")
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		cmd, err := os.ReadFile(p)
		if err != nil || !bytes.Contains(cmd, []byte("--config-file="+config)) {
			continue
		}
		stat, err := os.ReadFile(filepath.Join(filepath.Dir(p), "stat"))
		if err != nil {
			return -1
		}
		// Fields after the command name: state is field 3, utime 14, stime 15.
		f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+2:]))
		ut, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		return time.Duration(ut+st) * time.Second / 100 // USER_HZ
	}
	return -1
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkWrite inserts batches of 5000 BidPlaced rows into the real server, one Write at a
// time. rows/s is the sink's throughput with the server on the same machine;
// client-cpu-µs/row and allocs/row are this process's cost per row (conversion, encoding,
// compression, the driver; allocs are mostly hyperpb boxing scalars in Get);
// server-cpu-µs/row is clickhouse-server's.
func BenchmarkWrite(b *testing.B) {
	md := bidPlaced(b)
	s := openSink(b, testConfig(newTable(b)), testDeps(b, md))
	recs := bidRecords(b, md, benchBatch)
	assign(b, s, "auctions.bids", 0, 1, 2, 3)
	ctx := context.Background()
	next := int64(0)
	run := func() {
		for _, r := range recs {
			r.Offset = next // fresh offsets: nothing is skipped as already landed
			next++
		}
		if err := s.Write(ctx, recs); err != nil {
			b.Fatal(err)
		}
	}
	run() // warm the pools and the connection
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	cpu0, srv0 := cpuTime(), serverCPU()
	b.ResetTimer()
	for b.Loop() {
		run()
	}
	b.StopTimer()
	cpu, srv := cpuTime()-cpu0, serverCPU()-srv0
	runtime.ReadMemStats(&ms1)
	rows := float64(b.N * benchBatch)
	if srv0 >= 0 {
		b.ReportMetric(float64(srv.Microseconds())/rows, "server-cpu-µs/row")
	}
	b.ReportMetric(rows/b.Elapsed().Seconds(), "rows/s")
	b.ReportMetric(float64(cpu.Microseconds())/rows, "client-cpu-µs/row")
	b.ReportMetric(float64(ms1.Mallocs-ms0.Mallocs)/rows, "allocs/row")
}

// BenchmarkConvert is the sink's own work per batch without the server: converting 5000
// BidPlaced records into column buffers.
func BenchmarkConvert(b *testing.B) {
	md := bidPlaced(b)
	s := newSink(b, testConfig("bench"), testDeps(b, md))
	cols, err := contractColumns(md, featuresOf(version{18, 16, 1}), func(string) bool { return false })
	if err != nil {
		b.Fatal(err)
	}
	tbl := &table{exists: true}
	for _, lc := range cols {
		tbl.columns = append(tbl.columns, tableColumn{name: lc.name, typ: lc.desiredType(featuresOf(version{18, 16, 1}))})
	}
	_, bound, _, err := s.reconcile(featuresOf(version{18, 16, 1}), tbl)
	if err != nil {
		b.Fatal(err)
	}
	w := newWriter(s.fqtn, bound, featuresOf(version{18, 16, 1}))
	recs := bidRecords(b, md, benchBatch)
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		bl := w.pool.Get().(*builder)
		bl.reset(len(recs))
		for _, r := range recs {
			if err := bl.add(s, r, now); err != nil {
				b.Fatal(err)
			}
		}
		w.pool.Put(bl)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*benchBatch), "ns/row")
}
