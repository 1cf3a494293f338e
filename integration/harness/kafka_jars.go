package harness

import (
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// KafkaVersion is the Apache Kafka release the harness runs
// (org.apache.kafka:kafka_2.13 from Maven Central).
const KafkaVersion = "4.1.1"

// kafkaPOM lists the broker jars; see kafka/pom.xml.
//
//go:embed kafka/pom.xml
var kafkaPOM []byte

// kafkaHome is the per-version cache directory.
func kafkaHome() string {
	return filepath.Join(cacheDir(), "kafka-"+KafkaVersion)
}

// EnsureKafkaJars makes sure the Kafka broker jars are in the cache and
// returns the directory holding them (for `java -cp '<dir>/*'`). The first
// call downloads them with `mvn dependency:copy-dependencies` (Maven Central,
// about 45 MB); later calls only check that the directory exists. Concurrent
// callers, in this or other processes, are serialized by a file lock and share
// one download. It also prepares a formatted KRaft storage template so a
// broker start does not need a second JVM to format its log directory.
func EnsureKafkaJars(ctx context.Context) (string, error) {
	home := kafkaHome()
	libs := filepath.Join(home, "libs")
	template := filepath.Join(home, "template")
	if dirExists(libs) && dirExists(template) {
		return libs, nil
	}
	unlock, err := lockFile(ctx, filepath.Join(home, ".lock"))
	if err != nil {
		return "", fmt.Errorf("fetch kafka %s jars: %w", KafkaVersion, err)
	}
	defer unlock()

	if !dirExists(libs) {
		if err := fetchKafkaJars(ctx, home, libs); err != nil {
			return "", err
		}
	}
	if !dirExists(template) {
		if err := formatKafkaTemplate(ctx, libs, template); err != nil {
			return "", err
		}
	}
	return libs, nil
}

// fetchKafkaJars runs Maven into libs.tmp and renames it to libs, so a
// half-finished download is never mistaken for a complete one.
func fetchKafkaJars(ctx context.Context, home, libs string) error {
	mvn, err := lookPath("mvn")
	if err != nil {
		return fmt.Errorf("fetch kafka %s jars: maven is required the first time (apt-get install -y maven): %w", KafkaVersion, err)
	}
	pom := filepath.Join(home, "pom.xml")
	if err := os.WriteFile(pom, kafkaPOM, 0o644); err != nil {
		return fmt.Errorf("fetch kafka %s jars: write pom: %w", KafkaVersion, err)
	}
	tmp := libs + ".tmp"
	if err := os.RemoveAll(tmp); err != nil {
		return fmt.Errorf("fetch kafka %s jars: clear %s: %w", KafkaVersion, tmp, err)
	}
	cmd := exec.CommandContext(ctx, mvn, "-q", "-B", "-Dstyle.color=never",
		"-f", pom,
		"dependency:copy-dependencies",
		"-Dkafka.version="+KafkaVersion,
		"-DincludeScope=runtime",
		"-DoutputDirectory="+tmp,
	)
	cmd.Dir = home
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("fetch kafka %s jars: mvn dependency:copy-dependencies: %w\n%s", KafkaVersion, err, lastLines(string(out), 30))
	}
	if _, err := os.Stat(filepath.Join(tmp, "kafka_2.13-"+KafkaVersion+".jar")); err != nil {
		return fmt.Errorf("fetch kafka %s jars: maven finished but the broker jar is missing: %w", KafkaVersion, err)
	}
	if err := os.Rename(tmp, libs); err != nil {
		return fmt.Errorf("fetch kafka %s jars: %w", KafkaVersion, err)
	}
	return nil
}

// formatKafkaTemplate runs kafka.tools.StorageTool once and keeps the
// formatted log directory (meta.properties + bootstrap.checkpoint) as a
// template. Neither file names a path or port, so every broker can start from
// a copy: that saves a JVM start (~1.5 s) per broker. All brokers share the
// template's cluster id, which is harmless for independent single-node
// clusters.
func formatKafkaTemplate(ctx context.Context, libs, template string) error {
	java, err := javaPath()
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp(filepath.Dir(template), "template-")
	if err != nil {
		return fmt.Errorf("format kafka storage template: %w", err)
	}
	defer os.RemoveAll(work)
	data := filepath.Join(work, "data")
	// Ports are never bound by the format tool; any values do.
	props := kafkaServerProperties(data, 9092, 9093)
	propsPath := filepath.Join(work, "server.properties")
	if err := os.WriteFile(propsPath, []byte(props), 0o644); err != nil {
		return fmt.Errorf("format kafka storage template: %w", err)
	}
	clusterID, err := newKafkaClusterID()
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, java, "-Xmx256m", "-cp", filepath.Join(libs, "*"),
		"kafka.tools.StorageTool", "format", "-t", clusterID, "-c", propsPath)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("format kafka storage template: kafka.tools.StorageTool format: %w\n%s", err, lastLines(string(out), 30))
	}
	for _, f := range kafkaTemplateFiles {
		if _, err := os.Stat(filepath.Join(data, f)); err != nil {
			return fmt.Errorf("format kafka storage template: StorageTool did not write %s: %w", f, err)
		}
	}
	if err := os.Rename(data, template); err != nil {
		return fmt.Errorf("format kafka storage template: %w", err)
	}
	return nil
}

// kafkaTemplateFiles are the files StorageTool format writes into a log dir.
var kafkaTemplateFiles = []string{"meta.properties", "bootstrap.checkpoint"}

// newKafkaClusterID returns a random Kafka cluster id (URL-safe base64 of a
// 16-byte UUID, like `kafka-storage random-uuid`).
func newKafkaClusterID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("generate kafka cluster id: %w", err)
	}
	b[6] = b[6]&0x0f | 0x40 // version 4
	b[8] = b[8]&0x3f | 0x80 // variant
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// javaPath finds java: $JAVA_HOME/bin/java, else java on PATH.
func javaPath() (string, error) {
	if home := os.Getenv("JAVA_HOME"); home != "" {
		p := filepath.Join(home, "bin", "java")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	p, err := lookPath("java")
	if err != nil {
		return "", fmt.Errorf("kafka needs java 17+ (apt-get install -y openjdk-17-jre-headless): %w", err)
	}
	return p, nil
}

func dirExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
