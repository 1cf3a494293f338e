package harness

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// javaPartitioner asks Kafka's own producer code (BuiltInPartitioner.partitionForKey, the
// Java client's partition choice for keyed records) which partition each key goes to.
const javaPartitioner = `import org.apache.kafka.clients.producer.internals.BuiltInPartitioner;
import java.io.*;
import java.util.HexFormat;

public class Partitions {
    public static void main(String[] args) throws IOException {
        int n = Integer.parseInt(args[0]);
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in));
        StringBuilder out = new StringBuilder();
        for (String line; (line = in.readLine()) != null; ) {
            out.append(BuiltInPartitioner.partitionForKey(HexFormat.of().parseHex(line), n)).append('\n');
        }
        System.out.print(out);
    }
}
`

// JavaPartitions returns the partition the Apache Kafka Java producer (from the harness's
// jars) chooses for each key of a topic with n partitions.
func JavaPartitions(tb testing.TB, keys [][]byte, n int) []int32 {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	libs, err := EnsureKafkaJars(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	java, err := javaPath()
	if err != nil {
		tb.Fatal(err)
	}
	src := filepath.Join(tb.TempDir(), "Partitions.java")
	if err := os.WriteFile(src, []byte(javaPartitioner), 0o644); err != nil {
		tb.Fatal(err)
	}
	var in bytes.Buffer
	for _, k := range keys {
		in.WriteString(hex.EncodeToString(k))
		in.WriteByte('\n')
	}
	cmd := exec.CommandContext(ctx, java, "-cp", filepath.Join(libs, "*"), src, strconv.Itoa(n))
	cmd.Stdin = &in
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		tb.Fatalf("java partitioner: %v\n%s", err, stderr.String())
	}
	lines := strings.Fields(string(out))
	if len(lines) != len(keys) {
		tb.Fatalf("java partitioner printed %d partitions for %d keys", len(lines), len(keys))
	}
	parts := make([]int32, len(lines))
	for i, l := range lines {
		p, err := strconv.Atoi(l)
		if err != nil {
			tb.Fatalf("java partitioner line %d: %v", i, err)
		}
		parts[i] = int32(p)
	}
	return parts
}

// CreateTopicWithConfigs is CreateTopic with topic configs (e.g. max.message.bytes).
func (k *Kafka) CreateTopicWithConfigs(tb testing.TB, name string, partitions int, configs map[string]string) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := k.createTopic(ctx, name, partitions, configs); err != nil {
		tb.Fatal(fmt.Errorf("create topic %s: %w", name, err))
	}
}
