// Package harness starts real servers on loopback for integration tests:
// Apache Kafka (KRaft combined mode, broker jars from Maven Central),
// ClickHouse (Debian's clickhouse-server 18.16, or the upstream `clickhouse`
// binary as `clickhouse server` when only that is on PATH), and a BigQuery
// emulator (PyPI's bqemulator, StartBQEmulator; flat tables only, see
// docs/sinks.md).
//
// Each server runs as a child process of the test binary with its own
// configuration, random free 127.0.0.1 ports and a private data directory, so
// any number of test packages can run at once. Servers log to a file in their
// directory; a failed start returns an error that ends with the tail of that
// log.
//
// There are two entry points per server:
//
//   - StartKafka / StartClickHouse take a testing.TB, use tb.TempDir, stop the
//     server in tb.Cleanup and fail the test (never skip) when the server cannot
//     start.
//   - StartKafkaProcess / StartClickHouseProcess take a context and a directory
//     and return an error, for TestMain.
//
// To share one broker per package:
//
//	var kafka *harness.Kafka
//
//	func TestMain(m *testing.M) {
//		dir, err := os.MkdirTemp("", "kafka")
//		if err != nil {
//			fmt.Fprintln(os.Stderr, err)
//			os.Exit(1)
//		}
//		kafka, err = harness.StartKafkaProcess(context.Background(), dir)
//		if err != nil {
//			fmt.Fprintln(os.Stderr, err)
//			os.Exit(1)
//		}
//		code := m.Run()
//		kafka.Stop()
//		os.RemoveAll(dir)
//		os.Exit(code)
//	}
//
// Tests sharing a server must each use their own topic or table.
//
// Kafka needs `java` (17+) and `mvn` on PATH the first time, to fetch the broker
// jars into the cache directory ($SWITCHYARD_CACHE, else the user cache
// directory + "/switchyard"); later starts reuse the cache and need only java.
// `go run ./integration/harness/cmd/fetch-kafka` fills the cache ahead of the
// tests. ClickHouse needs `clickhouse-server` on PATH (apt-get install -y
// clickhouse-server clickhouse-client); .ci/run installs both. The BigQuery
// emulator needs the virtual environment .ci/setup installs it into
// (~/.cache/switchyard/bqemulator-venv, or $SWITCHYARD_BQEMULATOR_VENV).
//
// Child processes get SIGKILL when the test binary dies (Pdeathsig), so a
// crashed or timed-out test does not leave servers running.
package harness
