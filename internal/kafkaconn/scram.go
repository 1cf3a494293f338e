package kafkaconn

import (
	"github.com/IBM/sarama"
	"github.com/xdg-go/scram"
)

var (
	sha256 = scram.SHA256
	sha512 = scram.SHA512
)

// scramGenerator returns a sarama SCRAM client factory for the hash. sarama ships no SCRAM
// implementation of its own; this adapts xdg-go/scram to its SCRAMClient interface.
func scramGenerator(hash scram.HashGeneratorFcn) func() sarama.SCRAMClient {
	return func() sarama.SCRAMClient { return &scramClient{hash: hash} }
}

// scramClient is one SCRAM conversation for sarama.
type scramClient struct {
	hash scram.HashGeneratorFcn
	conv *scram.ClientConversation
}

// Begin starts a conversation for the user.
func (c *scramClient) Begin(user, password, authzID string) error {
	cl, err := c.hash.NewClient(user, password, authzID)
	if err != nil {
		return err
	}
	c.conv = cl.NewConversation()
	return nil
}

// Step answers one server challenge.
func (c *scramClient) Step(challenge string) (string, error) { return c.conv.Step(challenge) }

// Done reports whether the conversation is over.
func (c *scramClient) Done() bool { return c.conv.Done() }
