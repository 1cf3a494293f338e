package contract

import "time"

// SetRegistryClock replaces the clock the registry's cache expiry reads, for tests.
func SetRegistryClock(r *SchemaRegistry, now func() time.Time) { r.now = now }
