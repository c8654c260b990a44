// Package denylimit rate-limits the denied audit events a server records per
// caller. Denied events are permanent (the hash chain forbids editing them)
// and any client that reaches a listener can provoke one, so each caller gets
// a token bucket of Burst events refilled at Rate per second. Refusals over
// the limit are counted, and the count goes into the caller's next recorded
// event ("suppressed"), so the log still says how many there were. Callers
// never suppress the log line or the metric, only the stored event.
//
// agentid-server's gRPC services and its OAuth token endpoint share this one
// policy.
package denylimit

import (
	"sync"
	"time"
)

const (
	// Rate is how many denied events per second a caller earns back.
	Rate = 5.0
	// Burst is how many denied events a caller may have recorded at once.
	Burst = 50.0
	// MaxCallers bounds the memory: past it every bucket is forgotten,
	// which only ever lets more events through, never fewer.
	MaxCallers = 10000
)

// Limiter is a per-caller token bucket. The zero value is ready to use.
type Limiter struct {
	mu      sync.Mutex
	callers map[string]*bucket
}

type bucket struct {
	tokens     float64
	last       time.Time
	suppressed int
}

// Allow reports whether a denied event of caller may be recorded now, and
// how many were suppressed since the last one that was.
func (l *Limiter) Allow(caller string, now time.Time) (bool, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.callers == nil || len(l.callers) >= MaxCallers {
		l.callers = make(map[string]*bucket)
	}
	b, ok := l.callers[caller]
	if !ok {
		b = &bucket{tokens: Burst, last: now}
		l.callers[caller] = b
	}
	b.tokens = min(Burst, b.tokens+now.Sub(b.last).Seconds()*Rate)
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
