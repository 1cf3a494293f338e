package harness

import (
	"encoding/base64"
	"encoding/xml"
	"testing"
)

func TestKafkaPOMVersion(t *testing.T) {
	var pom struct {
		Properties struct {
			KafkaVersion string `xml:"kafka.version"`
		} `xml:"properties"`
	}
	if err := xml.Unmarshal(kafkaPOM, &pom); err != nil {
		t.Fatalf("parse kafka/pom.xml: %v", err)
	}
	if pom.Properties.KafkaVersion != KafkaVersion {
		t.Fatalf("kafka/pom.xml kafka.version = %q, want KafkaVersion %q", pom.Properties.KafkaVersion, KafkaVersion)
	}
}

func TestNewKafkaClusterID(t *testing.T) {
	id, err := newKafkaClusterID()
	if err != nil {
		t.Fatal(err)
	}
	b, err := base64.RawURLEncoding.DecodeString(id)
	if err != nil || len(b) != 16 {
		t.Fatalf("cluster id %q: decoded %d bytes, err %v; want 16 bytes", id, len(b), err)
	}
}
