package source

// Released returns a channel that is closed when the partition the batch was fetched under
// starts being released: revoked, lost, or the source closing. A handler that holds a batch
// back (the engine's dead-letter breaker does while it is tripped) must then hand it back at
// once: a revoke waits up to DrainTimeout for every emitted batch, and a released partition
// neither commits nor redelivers the batch, so its next owner consumes it from the committed
// offset. It returns nil (never closed) for a Batch the Source did not emit.
func (b *Batch) Released() <-chan struct{} {
	if b == nil || b.p == nil {
		return nil
	}
	return b.p.revokeCh
}
