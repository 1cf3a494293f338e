package harness

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/switchyard-dev/switchyard/internal/childproc"
)

// KafkaStartTimeout bounds StartKafka and Restart, including a first-time jar
// download. StartKafkaProcess uses the caller's context instead.
var KafkaStartTimeout = 3 * time.Minute

// kafkaStopGrace is how long Stop waits for a clean shutdown before SIGKILL.
const kafkaStopGrace = 30 * time.Second

// kafkaJVMArgs are the JVM options for the broker: a small heap, the serial
// collector, and only the C1 JIT (TieredStopAtLevel=1), which cut start-up by
// about a third on a busy 2-core machine at the cost of peak throughput that
// tests do not need. Benchmarks against this broker measure the harness, not
// Kafka.
var kafkaJVMArgs = []string{
	"-Xmx512m", "-Xms128m",
	"-XX:+UseSerialGC",
	"-XX:TieredStopAtLevel=1",
	"-Djava.awt.headless=true",
}

// BenchmarkJVMArgs are JVM options for a broker that benchmarks measure against: the full
// JIT and a fixed 1 GiB heap, as a production broker would run.
var BenchmarkJVMArgs = []string{"-Xmx1g", "-Xms1g", "-XX:+UseG1GC", "-Djava.awt.headless=true"}

// UseJVMArgs sets the JVM options of brokers started afterwards (e.g. BenchmarkJVMArgs). Call
// it before starting any broker; it is not safe to call concurrently with a start.
func UseJVMArgs(args []string) { kafkaJVMArgs = args }

// Kafka is a single-node Apache Kafka (KRaft, broker+controller in one JVM)
// on 127.0.0.1. Its methods are safe for concurrent use.
type Kafka struct {
	dir      string // config, log and data live here
	libs     string // broker jars
	java     string
	dataDir  string
	logPath  string
	props    string
	log4j    string
	port     int // PLAINTEXT listener
	ctrlPort int // CONTROLLER listener

	mu   sync.Mutex
	proc *childproc.Process // nil while stopped
}

// StartKafka starts a broker in tb.TempDir() and stops it in tb.Cleanup.
// It fails the test (tb.Fatal) when the broker cannot start; the message ends
// with the tail of the broker log.
func StartKafka(tb testing.TB) *Kafka {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), KafkaStartTimeout)
	defer cancel()
	start := time.Now()
	k, err := StartKafkaProcess(ctx, tb.TempDir())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(k.Stop)
	tb.Logf("kafka %s on %s started in %s (log %s)", KafkaVersion, k.Brokers()[0], time.Since(start).Round(time.Millisecond), k.LogPath())
	return k
}

// StartKafkaProcess starts a broker whose config, data and log live in dir
// (which must exist; it is not removed). It returns once a franz-go admin
// client can list the broker and validate a topic creation, or fails when ctx
// ends or the broker exits. The caller must call Stop. Use it from TestMain to
// share one broker per package.
func StartKafkaProcess(ctx context.Context, dir string) (*Kafka, error) {
	k, err := startKafkaProcess(ctx, dir)
	if err != nil {
		return nil, fmt.Errorf("start kafka: %w", err)
	}
	return k, nil
}

func startKafkaProcess(ctx context.Context, dir string) (*Kafka, error) {
	libs, err := EnsureKafkaJars(ctx)
	if err != nil {
		return nil, err
	}
	java, err := javaPath()
	if err != nil {
		return nil, err
	}
	dir, err = filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	k := &Kafka{
		dir:     dir,
		libs:    libs,
		java:    java,
		dataDir: filepath.Join(dir, "kafka-data"),
		logPath: filepath.Join(dir, "kafka.log"),
		props:   filepath.Join(dir, "server.properties"),
		log4j:   filepath.Join(dir, "log4j2.properties"),
	}
	if err := k.prepareData(); err != nil {
		return nil, err
	}
	if err := os.WriteFile(k.log4j, []byte(kafkaLog4j), 0o644); err != nil {
		return nil, err
	}
	// Free ports can be taken between reservation and bind; retry with
	// fresh ones when that is why the broker died.
	for attempt := 1; ; attempt++ {
		ports, err := childproc.FreePorts(2)
		if err != nil {
			return nil, err
		}
		k.port, k.ctrlPort = ports[0], ports[1]
		props := kafkaServerProperties(k.dataDir, k.port, k.ctrlPort)
		if err := os.WriteFile(k.props, []byte(props), 0o644); err != nil {
			return nil, err
		}
		logStart := childproc.FileSize(k.logPath)
		err = k.start(ctx)
		if err == nil {
			return k, nil
		}
		if attempt < 3 && ctx.Err() == nil && childproc.LogSinceMentions(k.logPath, logStart, "Address already in use") {
			continue
		}
		return nil, err
	}
}

// prepareData copies the formatted storage template into the data dir.
func (k *Kafka) prepareData() error {
	if err := os.MkdirAll(k.dataDir, 0o755); err != nil {
		return err
	}
	template := filepath.Join(kafkaHome(), "template")
	for _, f := range kafkaTemplateFiles {
		b, err := os.ReadFile(filepath.Join(template, f))
		if err != nil {
			return fmt.Errorf("read storage template: %w", err)
		}
		if err := os.WriteFile(filepath.Join(k.dataDir, f), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// start launches the JVM and waits for readiness. On failure the process is
// stopped and the error carries the log tail.
func (k *Kafka) start(ctx context.Context) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.proc != nil && !k.proc.Exited() {
		return errors.New("already running")
	}
	argv := append([]string{k.java}, kafkaJVMArgs...)
	argv = append(argv,
		"-Dlog4j2.configurationFile="+k.log4j,
		"-cp", filepath.Join(k.libs, "*"),
		"kafka.Kafka", k.props,
	)
	p, err := childproc.Start("kafka", k.dir, k.logPath, argv)
	if err != nil {
		return err
	}
	k.proc = p

	cl, err := kgo.NewClient(
		kgo.SeedBrokers(k.addr()),
		kgo.RetryTimeout(2*time.Second),
		kgo.RequestRetries(1),
	)
	if err != nil {
		p.Stop(0)
		return fmt.Errorf("create probe client: %w", err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	err = p.WaitReady(ctx, 100*time.Millisecond, func(ctx context.Context) error {
		brokers, err := adm.ListBrokers(ctx)
		if err != nil {
			return fmt.Errorf("list brokers: %w", err)
		}
		if len(brokers) != 1 {
			return fmt.Errorf("list brokers: got %d brokers, want 1", len(brokers))
		}
		// A broker can be listed before the controller accepts topic
		// creation; a validate-only create proves it does.
		res, err := adm.ValidateCreateTopics(ctx, 1, 1, nil, "harness-readiness-probe")
		if err != nil {
			return fmt.Errorf("validate create topic: %w", err)
		}
		return res.Error()
	})
	if err != nil {
		p.Stop(0)
		return childproc.WithLogTail(fmt.Errorf("broker on %s: %w", k.addr(), err), k.logPath)
	}
	return nil
}

func (k *Kafka) addr() string { return "127.0.0.1:" + strconv.Itoa(k.port) }

// Brokers returns the bootstrap addresses ("127.0.0.1:port"). They stay the
// same across Stop and Restart.
func (k *Kafka) Brokers() []string { return []string{k.addr()} }

// LogPath is the broker's log file (stdout and stderr of every run).
func (k *Kafka) LogPath() string { return k.logPath }

// Stop shuts the broker down (SIGTERM, then SIGKILL after 30 s) and returns
// once the process has exited. Data and ports are kept for Restart. Stopping
// a stopped broker does nothing.
func (k *Kafka) Stop() {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.proc != nil {
		k.proc.Stop(kafkaStopGrace)
	}
}

// Restart stops the broker if it runs and starts it again on the same ports
// with the same data, for outage tests. It returns once the broker is ready
// and fails the test if it cannot start within KafkaStartTimeout.
func (k *Kafka) Restart(tb testing.TB) {
	tb.Helper()
	k.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), KafkaStartTimeout)
	defer cancel()
	for _, port := range []int{k.port, k.ctrlPort} {
		if err := childproc.WaitPortFree(ctx, port); err != nil {
			tb.Fatalf("restart kafka: %v", err)
		}
	}
	if err := k.start(ctx); err != nil {
		tb.Fatalf("restart kafka: %v", err)
	}
}

// NewClient returns a franz-go client for this broker with opts appended to
// the seed brokers, closed in tb.Cleanup.
func (k *Kafka) NewClient(tb testing.TB, opts ...kgo.Opt) *kgo.Client {
	tb.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(k.Brokers()...)}, opts...)...)
	if err != nil {
		tb.Fatalf("create kafka client: %v", err)
	}
	tb.Cleanup(cl.Close)
	return cl
}

// CreateTopic creates topic with the given partition count (replication
// factor 1) and waits until every partition has a leader. It fails the test on
// any error, including an existing topic: give each test its own topic.
func (k *Kafka) CreateTopic(tb testing.TB, name string, partitions int) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := k.CreateTopicContext(ctx, name, partitions); err != nil {
		tb.Fatal(err)
	}
}

// CreateTopicContext is CreateTopic for callers without a testing.TB.
func (k *Kafka) CreateTopicContext(ctx context.Context, name string, partitions int) error {
	return k.createTopic(ctx, name, partitions, nil)
}

func (k *Kafka) createTopic(ctx context.Context, name string, partitions int, configs map[string]string) error {
	var cfg map[string]*string
	for key, v := range configs {
		if cfg == nil {
			cfg = map[string]*string{}
		}
		cfg[key] = &v
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(k.Brokers()...))
	if err != nil {
		return fmt.Errorf("create topic %s: %w", name, err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	if _, err := adm.CreateTopic(ctx, int32(partitions), 1, cfg, name); err != nil {
		return fmt.Errorf("create topic %s: %w", name, err)
	}
	for {
		md, err := adm.Metadata(ctx, name)
		if err == nil {
			err = topicReady(md, name, partitions)
		}
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("create topic %s: wait for leaders: %w (last: %v)", name, ctx.Err(), err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func topicReady(md kadm.Metadata, name string, partitions int) error {
	td, ok := md.Topics[name]
	if !ok {
		return errors.New("topic not in metadata")
	}
	if td.Err != nil {
		return td.Err
	}
	if len(td.Partitions) != partitions {
		return fmt.Errorf("metadata has %d partitions, want %d", len(td.Partitions), partitions)
	}
	for _, p := range td.Partitions {
		if p.Err != nil {
			return fmt.Errorf("partition %d: %w", p.Partition, p.Err)
		}
		if p.Leader < 0 {
			return fmt.Errorf("partition %d has no leader", p.Partition)
		}
	}
	return nil
}

// kafkaServerProperties is the broker config. Replication factors and ISR
// minimums are 1 because there is one node; the internal topics get few
// partitions because creating __consumer_offsets with the default 50 costs
// seconds on the first consumer group of every test process.
func kafkaServerProperties(dataDir string, port, ctrlPort int) string {
	return fmt.Sprintf(`# generated by switchyard/integration/harness
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:%[3]d
listeners=PLAINTEXT://127.0.0.1:%[2]d,CONTROLLER://127.0.0.1:%[3]d
advertised.listeners=PLAINTEXT://127.0.0.1:%[2]d
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
log.dirs=%[1]s
num.partitions=8
auto.create.topics.enable=true
delete.topic.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
num.network.threads=2
num.io.threads=4
`, dataDir, port, ctrlPort)
}

// kafkaLog4j sends broker logs to stdout (the log file) at INFO, with the
// chattiest loggers turned down.
const kafkaLog4j = `status = error
appender.out.type = Console
appender.out.name = out
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = out
logger.config.name = org.apache.kafka.common.config
logger.config.level = WARN
logger.utils.name = org.apache.kafka.common.utils.AppInfoParser
logger.utils.level = WARN
`
