package source

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// ErrNotMember is returned by Confirm when the group coordinator no longer knows this member
// (it was evicted after the session timeout, or replaced): its partitions belong to others.
var ErrNotMember = errors.New("no longer a member of the consumer group")

// membership is Confirm's lease: the coordinator cannot have evicted this member before
// confirmedAt + the session timeout.
type membership struct {
	mu          sync.Mutex // held while a confirming heartbeat is in flight
	confirmedAt time.Time
	memberID    string
	generation  int32
}

// Confirm returns nil when this member's group session is known to be alive: a heartbeat
// that this member sent less than a third of the session timeout ago was accepted, else it
// sends one now and waits for the answer. It returns an error wrapping ErrNotMember when the
// coordinator refuses the member, and another error when it cannot be asked.
//
// Sinks without transactions call it before every write attempt (sinks.RunnerOptions.Guard).
// The client's own heartbeats learn the same thing, but only on their next round: a process
// resumed after a pause longer than the session timeout (SIGSTOP, a frozen VM, a long GC
// stall) would otherwise write the batches it held for partitions that were given to other
// members meanwhile, until that heartbeat fails and the partitions are marked lost. Once
// they are, their batches' contexts are canceled and the runner drops them.
//
// Confirm is safe for concurrent use; concurrent callers share one heartbeat. It costs one
// request per lease (a third of the session timeout) at most, and none while the lease holds.
func (s *Source) Confirm(ctx context.Context) error {
	s.mu.RLock()
	cl := s.client
	s.mu.RUnlock()
	if cl == nil {
		return errors.New("confirm group membership: not subscribed")
	}
	memberID, gen := cl.GroupMetadata()
	lease := sessionTimeout(cl) / 3
	m := &s.member
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.memberID == memberID && m.generation == gen && time.Since(m.confirmedAt) < lease {
		return nil
	}
	if memberID == "" {
		return fmt.Errorf("confirm group membership of %s: %w (not joined)", s.cfg.Group, ErrNotMember)
	}
	sent := time.Now()
	req := kmsg.NewPtrHeartbeatRequest()
	req.Group, req.MemberID, req.Generation = s.cfg.Group, memberID, gen
	if id := instanceID(cl); id != "" {
		req.InstanceID = &id
	}
	ctx, cancel := context.WithTimeout(ctx, max(lease, time.Second))
	defer cancel()
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return fmt.Errorf("confirm group membership of %s: %w", s.cfg.Group, err)
	}
	switch err := kerr.ErrorForCode(resp.ErrorCode); {
	case err == nil, errors.Is(err, kerr.RebalanceInProgress), errors.Is(err, kerr.IllegalGeneration):
		// Still a member: in a rebalance (or just after one, before the client adopted the
		// new generation) the partitions it has not revoked yet are still its own. An evicted
		// member is unknown to the coordinator instead.
		m.confirmedAt, m.memberID, m.generation = sent, memberID, gen
		return nil
	case errors.Is(err, kerr.UnknownMemberID), errors.Is(err, kerr.FencedInstanceID):
		s.log.Warn("group coordinator no longer knows this member; holding writes until its partitions are marked lost",
			"member_id", memberID, "generation", gen, "error", err)
		return fmt.Errorf("confirm group membership of %s: %w: %w", s.cfg.Group, ErrNotMember, err)
	default:
		return fmt.Errorf("confirm group membership of %s: %w", s.cfg.Group, err)
	}
}

// sessionTimeout is the client's group session timeout (kgo's default when not set).
func sessionTimeout(cl *kgo.Client) time.Duration {
	if d, ok := cl.OptValue(kgo.SessionTimeout).(time.Duration); ok && d > 0 {
		return d
	}
	return 45 * time.Second
}

// instanceID is the client's static group instance id, or "" (OptValue returns the option's
// string, "" when unset).
func instanceID(cl *kgo.Client) string {
	id, _ := cl.OptValue(kgo.InstanceID).(string)
	return id
}
