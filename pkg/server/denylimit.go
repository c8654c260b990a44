package server

import (
	"sync"
	"time"
)

// Denied audit events are permanent (the hash chain forbids pruning) and
// every refused request from any workload in the trust domain would write
// one, so they are rate limited per caller: a token bucket of denyBurst
// events refilled at denyRate per second. Refusals over the limit are counted
// and the count goes into the caller's next recorded event ("suppressed"),
// so the log still says how many there were. The log line and the metric are
// never suppressed.
const (
	denyRate              = 5.0
	denyBurst             = 50.0
	denyMaxCallers        = 10000
	denyEventWriteTimeout = 5 * time.Second
)

type denyLimiter struct {
	mu      sync.Mutex
	callers map[string]*denyBucket
}

type denyBucket struct {
	tokens     float64
	last       time.Time
	suppressed int
}

// allow reports whether a denied event of caller may be recorded now, and
// how many were suppressed since the last one that was.
func (l *denyLimiter) allow(caller string, now time.Time) (bool, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.callers == nil || len(l.callers) >= denyMaxCallers {
		// Bounded memory: forgetting every bucket at once only ever lets
		// more events through, never fewer.
		l.callers = make(map[string]*denyBucket)
	}
	b, ok := l.callers[caller]
	if !ok {
		b = &denyBucket{tokens: denyBurst, last: now}
		l.callers[caller] = b
	}
	b.tokens += now.Sub(b.last).Seconds() * denyRate
	if b.tokens > denyBurst {
		b.tokens = denyBurst
	}
	b.last = now
	if b.tokens < 1 {
		b.suppressed++
		return false, 0
	}
	b.tokens--
	n := b.suppressed
	b.suppressed = 0
	return true, n
}
