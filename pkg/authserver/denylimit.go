package authserver

import (
	"strconv"
	"sync"
	"time"
)

// Denied audit events are permanent and the token endpoint is open to any
// client that reaches the listener, so they are rate limited per caller (the
// proven identity, else the remote address): a token bucket of denyBurst
// events refilled at denyRate per second. Refusals over the limit are counted
// into the caller's next recorded event ("suppressed"); the log line is never
// suppressed. The same policy as agentid-server's gRPC refusals.
const (
	denyRate       = 5.0
	denyBurst      = 50.0
	denyMaxCallers = 10000
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

func (l *denyLimiter) allow(caller string, now time.Time) (bool, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.callers == nil || len(l.callers) >= denyMaxCallers {
		// Bounded memory: forgetting every bucket only lets more through.
		l.callers = make(map[string]*denyBucket)
	}
	b, ok := l.callers[caller]
	if !ok {
		b = &denyBucket{tokens: denyBurst, last: now}
		l.callers[caller] = b
	}
	b.tokens = min(denyBurst, b.tokens+now.Sub(b.last).Seconds()*denyRate)
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

func itoa(n int) string { return strconv.Itoa(n) }
