package reconciler

import "time"

// Clock is the reconciler's source of time, injected so that tests drive the
// periodic pass instead of waiting for it.
type Clock interface {
	// Now returns the current time; it stamps SyncState.
	Now() time.Time
	// After returns a channel that receives once d has passed, as time.After.
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }
