package kafkaconn

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/switchyard-dev/switchyard/internal/config"
)

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestOptions_errors checks that every malformed kafka section is refused by both builders with
// an error naming the problem.
func TestOptions_errors(t *testing.T) {
	certs := newTestCerts(t)
	notPEM := writeFile(t, "ca.pem", "not a certificate\n")
	emptyPass := writeFile(t, "pass", "\n")
	brokers := []string{"127.0.0.1:1"}

	tests := []struct {
		name string
		k    config.Kafka
		want string
	}{
		{"no brokers", config.Kafka{}, "no brokers"},
		{"unknown mechanism", config.Kafka{Brokers: brokers, SASL: config.SASL{Mechanism: "GSSAPI", Username: "u", Password: "p"}}, `unknown sasl mechanism "GSSAPI"`},
		{"no username", config.Kafka{Brokers: brokers, SASL: config.SASL{Mechanism: "PLAIN", Password: "p"}}, "needs a username"},
		{"no password", config.Kafka{Brokers: brokers, SASL: config.SASL{Mechanism: "SCRAM-SHA-256", Username: "u"}}, "needs a password or password_file"},
		{"password and file", config.Kafka{Brokers: brokers, SASL: config.SASL{Mechanism: "PLAIN", Username: "u", Password: "p", PasswordFile: emptyPass}}, "not both"},
		{"missing password file", config.Kafka{Brokers: brokers, SASL: config.SASL{Mechanism: "SCRAM-SHA-512", Username: "u", PasswordFile: filepath.Join(t.TempDir(), "nope")}}, "read sasl password_file"},
		{"empty password file", config.Kafka{Brokers: brokers, SASL: config.SASL{Mechanism: "PLAIN", Username: "u", PasswordFile: emptyPass}}, "is empty"},
		{"tls files without enabled", config.Kafka{Brokers: brokers, TLS: config.TLS{CAFile: certs.caFile}}, "tls.enabled is false"},
		{"missing ca file", config.Kafka{Brokers: brokers, TLS: config.TLS{Enabled: true, CAFile: filepath.Join(t.TempDir(), "nope")}}, "read tls ca_file"},
		{"ca file not PEM", config.Kafka{Brokers: brokers, TLS: config.TLS{Enabled: true, CAFile: notPEM}}, "holds no PEM certificate"},
		{"cert without key", config.Kafka{Brokers: brokers, TLS: config.TLS{Enabled: true, CertFile: certs.clientCert}}, "must be set together"},
		{"key is not the cert's", config.Kafka{Brokers: brokers, TLS: config.TLS{Enabled: true, CertFile: certs.clientCert, KeyFile: certs.serverKey}}, "load tls client certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := FranzOpts(tt.k); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("FranzOpts error = %v, want it to contain %q", err, tt.want)
			}
			if _, err := SaramaConfig(tt.k); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("SaramaConfig error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

// TestSaramaConfig_settings checks the settings a watermill sync publisher relies on.
func TestSaramaConfig_settings(t *testing.T) {
	pass := writeFile(t, "pass", "s3cret\r\n")
	c, err := SaramaConfig(config.Kafka{
		Brokers:  []string{"127.0.0.1:1"},
		ClientID: "switchyard-test",
		SASL:     config.SASL{Mechanism: "SCRAM-SHA-512", Username: "u", PasswordFile: pass},
	})
	if err != nil {
		t.Fatal(err)
	}
	if c.ClientID != "switchyard-test" || !c.Producer.Return.Successes || c.Producer.RequiredAcks != sarama.WaitForAll {
		t.Errorf("client id %q, return successes %v, acks %v", c.ClientID, c.Producer.Return.Successes, c.Producer.RequiredAcks)
	}
	if c.Version != sarama.NewConfig().Version {
		t.Errorf("version = %v, want sarama's default", c.Version)
	}
	if !c.Net.SASL.Enable || c.Net.SASL.Mechanism != sarama.SASLTypeSCRAMSHA512 || c.Net.SASL.Password != "s3cret" || c.Net.SASL.SCRAMClientGeneratorFunc == nil {
		t.Errorf("sasl = %+v", c.Net.SASL)
	}
	if c.Net.TLS.Enable {
		t.Error("tls enabled without being configured")
	}
}

// TestSASL_connects authenticates both clients against an in-process broker for every mechanism,
// and checks that a wrong password is refused.
func TestSASL_connects(t *testing.T) {
	tests := []struct {
		mechanism string
		fromFile  bool
	}{
		{"PLAIN", false},
		{"SCRAM-SHA-256", true},
		{"SCRAM-SHA-512", false},
	}
	for _, tt := range tests {
		t.Run(tt.mechanism, func(t *testing.T) {
			cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.EnableSASL(),
				kfake.Superuser(tt.mechanism, "alice", "wonder land"),
				kfake.SeedTopics(1, "sasl-"+strings.ToLower(tt.mechanism)))
			if err != nil {
				t.Fatal(err)
			}
			defer cluster.Close()

			s := config.SASL{Mechanism: tt.mechanism, Username: "alice", Password: "wonder land"}
			if tt.fromFile {
				s.Password, s.PasswordFile = "", writeFile(t, "pass", "wonder land\n")
			}
			k := config.Kafka{Brokers: cluster.ListenAddrs(), ClientID: "kafkaconn-test", SASL: s}
			pingFranz(t, k, true)
			produceSarama(t, k, "sasl-"+strings.ToLower(tt.mechanism), true)

			k.SASL.Password, k.SASL.PasswordFile = "wrong", ""
			pingFranz(t, k, false)
			produceSarama(t, k, "sasl-"+strings.ToLower(tt.mechanism), false)
		})
	}
}

// TestTLS_connects connects both clients to a broker that requires a client certificate signed
// by the test CA, with the CA, certificate and key read from files.
func TestTLS_connects(t *testing.T) {
	certs := newTestCerts(t)
	serverCert, err := tls.LoadX509KeyPair(certs.serverCert, certs.serverKey)
	if err != nil {
		t.Fatal(err)
	}
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "tls-topic"),
		kfake.TLS(&tls.Config{
			Certificates: []tls.Certificate{serverCert},
			ClientAuth:   tls.RequireAndVerifyClientCert,
			ClientCAs:    certs.pool,
			MinVersion:   tls.VersionTLS12,
		}))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()

	k := config.Kafka{Brokers: cluster.ListenAddrs(), TLS: config.TLS{
		Enabled: true, CAFile: certs.caFile, CertFile: certs.clientCert, KeyFile: certs.clientKey,
	}}
	pingFranz(t, k, true)
	produceSarama(t, k, "tls-topic", true)

	// Without the client certificate the broker refuses the handshake.
	k.TLS.CertFile, k.TLS.KeyFile = "", ""
	pingFranz(t, k, false)
}

func pingFranz(t *testing.T, k config.Kafka, wantOK bool) {
	t.Helper()
	opts, err := FranzOpts(k)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(append(opts, kgo.RetryTimeout(2*time.Second), kgo.RequestRetries(1))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = cl.Ping(ctx)
	if wantOK && err != nil {
		t.Errorf("franz-go ping: %v", err)
	}
	if !wantOK && err == nil {
		t.Error("franz-go ping succeeded, want it refused")
	}
}

func produceSarama(t *testing.T, k config.Kafka, topic string, wantOK bool) {
	t.Helper()
	c, err := SaramaConfig(k)
	if err != nil {
		t.Fatal(err)
	}
	c.Metadata.Retry.Max = 0
	c.Net.DialTimeout = 2 * time.Second
	p, err := sarama.NewSyncProducer(k.Brokers, c)
	if err == nil {
		defer p.Close()
		_, _, err = p.SendMessage(&sarama.ProducerMessage{Topic: topic, Value: sarama.StringEncoder("hi")})
	}
	if wantOK && err != nil {
		t.Errorf("sarama produce: %v", err)
	}
	if !wantOK && err == nil {
		t.Error("sarama produce succeeded, want it refused")
	}
}

type testCerts struct {
	pool                  *x509.CertPool
	caFile                string
	serverCert, serverKey string
	clientCert, clientKey string
}

// newTestCerts writes a CA, a server certificate for 127.0.0.1 and a client certificate, all
// as PEM files in a temporary directory.
func newTestCerts(t *testing.T) testCerts {
	t.Helper()
	dir := t.TempDir()
	write := func(name, typ string, der []byte) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	newKey := func() *ecdsa.PrivateKey {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return key
	}
	keyDER := func(key *ecdsa.PrivateKey) []byte {
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		return der
	}

	caKey := newKey()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "switchyard test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	leaf := func(serial int64, name string, usage x509.ExtKeyUsage) (certDER []byte, key *ecdsa.PrivateKey) {
		key = newKey()
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			Subject:      pkix.Name{CommonName: name},
			NotBefore:    time.Now().Add(-time.Hour),
			NotAfter:     time.Now().Add(time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{usage},
			IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return der, key
	}
	serverDER, serverKey := leaf(2, "127.0.0.1", x509.ExtKeyUsageServerAuth)
	clientDER, clientKey := leaf(3, "switchyard", x509.ExtKeyUsageClientAuth)

	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return testCerts{
		pool:       pool,
		caFile:     write("ca.pem", "CERTIFICATE", caDER),
		serverCert: write("server.pem", "CERTIFICATE", serverDER),
		serverKey:  write("server-key.pem", "PRIVATE KEY", keyDER(serverKey)),
		clientCert: write("client.pem", "CERTIFICATE", clientDER),
		clientKey:  write("client-key.pem", "PRIVATE KEY", keyDER(clientKey)),
	}
}
