// Package kafkaconn turns the kafka section of the configuration into client settings and holds
// the router's one producer. The router does all its Kafka I/O with franz-go (FranzOpts, the
// sources, Producer for the kafka sink and dead letters); SaramaConfig serves the watermill-kafka
// clients that product teams' services use. Both get the same brokers, client id, TLS and
// SASL, so a cluster is described once.
package kafkaconn

import (
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/switchyard-dev/switchyard/internal/config"
)

// SASL mechanism names, as written in the configuration.
const (
	MechanismPlain       = "PLAIN"
	MechanismSCRAMSHA256 = "SCRAM-SHA-256"
	MechanismSCRAMSHA512 = "SCRAM-SHA-512"
)

// FranzOpts returns the franz-go client options for k: seed brokers, client id, TLS and SASL.
// Files named in k (CA, client certificate and key, password file) are read now, so a missing
// or malformed file is an error here rather than at the first connection. The options hold no
// consumer or producer settings; callers append their own.
func FranzOpts(k config.Kafka) ([]kgo.Opt, error) {
	if len(k.Brokers) == 0 {
		return nil, errors.New("kafka: no brokers")
	}
	opts := []kgo.Opt{kgo.SeedBrokers(k.Brokers...)}
	if k.ClientID != "" {
		opts = append(opts, kgo.ClientID(k.ClientID))
	}
	tlsCfg, err := tlsConfig(k.TLS)
	if err != nil {
		return nil, err
	}
	if tlsCfg != nil {
		opts = append(opts, kgo.DialTLSConfig(tlsCfg))
	}
	user, pass, err := credentials(k.SASL)
	if err != nil {
		return nil, err
	}
	switch k.SASL.Mechanism {
	case "":
	case MechanismPlain:
		opts = append(opts, kgo.SASL(plain.Auth{User: user, Pass: pass}.AsMechanism()))
	case MechanismSCRAMSHA256:
		opts = append(opts, kgo.SASL(scram.Auth{User: user, Pass: pass}.AsSha256Mechanism()))
	case MechanismSCRAMSHA512:
		opts = append(opts, kgo.SASL(scram.Auth{User: user, Pass: pass}.AsSha512Mechanism()))
	}
	return opts, nil
}

// SaramaConfig returns a sarama configuration for k, for watermill-kafka clients: client id,
// TLS and SASL, plus the producer settings a synchronous publisher needs (successes returned)
// and acks from all in-sync replicas. The brokers are not part of a sarama configuration; pass
// k.Brokers to the publisher. Version is left at sarama's default. The returned configuration
// has passed sarama's Validate.
func SaramaConfig(k config.Kafka) (*sarama.Config, error) {
	if len(k.Brokers) == 0 {
		return nil, errors.New("kafka: no brokers")
	}
	c := sarama.NewConfig()
	if k.ClientID != "" {
		c.ClientID = k.ClientID
	}
	c.Producer.Return.Successes = true
	c.Producer.Return.Errors = true
	c.Producer.RequiredAcks = sarama.WaitForAll

	tlsCfg, err := tlsConfig(k.TLS)
	if err != nil {
		return nil, err
	}
	if tlsCfg != nil {
		c.Net.TLS.Enable = true
		c.Net.TLS.Config = tlsCfg
	}
	user, pass, err := credentials(k.SASL)
	if err != nil {
		return nil, err
	}
	if k.SASL.Mechanism != "" {
		c.Net.SASL.Enable = true
		c.Net.SASL.Handshake = true
		c.Net.SASL.User = user
		c.Net.SASL.Password = pass
		switch k.SASL.Mechanism {
		case MechanismPlain:
			c.Net.SASL.Mechanism = sarama.SASLTypePlaintext
		case MechanismSCRAMSHA256:
			c.Net.SASL.Mechanism = sarama.SASLTypeSCRAMSHA256
			c.Net.SASL.SCRAMClientGeneratorFunc = scramGenerator(sha256)
		case MechanismSCRAMSHA512:
			c.Net.SASL.Mechanism = sarama.SASLTypeSCRAMSHA512
			c.Net.SASL.SCRAMClientGeneratorFunc = scramGenerator(sha512)
		}
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("kafka: sarama config: %w", err)
	}
	return c, nil
}

// tlsConfig is t's client TLS configuration, or nil when TLS is disabled.
func tlsConfig(t config.TLS) (*tls.Config, error) {
	c, err := t.ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("kafka: %w", err)
	}
	return c, nil
}

// credentials returns the SASL user and password of s, reading the password file if one is
// named. Trailing line breaks of the file are dropped; nothing else is trimmed.
func credentials(s config.SASL) (user, pass string, err error) {
	switch s.Mechanism {
	case "":
		return "", "", nil
	case MechanismPlain, MechanismSCRAMSHA256, MechanismSCRAMSHA512:
	default:
		return "", "", fmt.Errorf("kafka: unknown sasl mechanism %q (want %s, %s or %s)",
			s.Mechanism, MechanismPlain, MechanismSCRAMSHA256, MechanismSCRAMSHA512)
	}
	if s.Username == "" {
		return "", "", fmt.Errorf("kafka: sasl %s needs a username", s.Mechanism)
	}
	switch {
	case s.Password != "" && s.PasswordFile != "":
		return "", "", errors.New("kafka: set sasl password or password_file, not both")
	case s.PasswordFile != "":
		b, err := os.ReadFile(s.PasswordFile)
		if err != nil {
			return "", "", fmt.Errorf("kafka: read sasl password_file: %w", err)
		}
		pass = strings.TrimRight(string(b), "\r\n")
		if pass == "" {
			return "", "", fmt.Errorf("kafka: sasl password_file %s is empty", s.PasswordFile)
		}
	case s.Password != "":
		pass = s.Password
	default:
		return "", "", fmt.Errorf("kafka: sasl %s needs a password or password_file", s.Mechanism)
	}
	return s.Username, pass, nil
}
