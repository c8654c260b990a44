package denylimit

import (
	"strconv"
	"testing"
	"time"
)

func TestAllow(t *testing.T) {
	var l Limiter
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	for i := range int(Burst) {
		if ok, n := l.Allow("alice", now); !ok || n != 0 {
			t.Fatalf("event %d: allowed %v, suppressed %d", i, ok, n)
		}
	}
	for range 3 {
		if ok, _ := l.Allow("alice", now); ok {
			t.Fatal("allowed past the burst")
		}
	}
	if ok, _ := l.Allow("bob", now); !ok {
		t.Fatal("another caller shares alice's bucket")
	}
	// One second gives Rate tokens back; the first event after carries the count.
	now = now.Add(time.Second)
	if ok, n := l.Allow("alice", now); !ok || n != 3 {
		t.Fatalf("after a second: allowed %v, suppressed %d, want true 3", ok, n)
	}
	for i := range int(Rate) - 1 {
		if ok, n := l.Allow("alice", now); !ok || n != 0 {
			t.Fatalf("refilled event %d: allowed %v, suppressed %d", i, ok, n)
		}
	}
	if ok, _ := l.Allow("alice", now); ok {
		t.Fatal("allowed more than Rate per second")
	}
}

func TestBoundedMemory(t *testing.T) {
	var l Limiter
	now := time.Now()
	for i := range MaxCallers {
		l.Allow(strconv.Itoa(i), now)
	}
	if ok, _ := l.Allow("new", now); !ok || len(l.callers) != 1 {
		t.Fatalf("after %d callers: %d buckets", MaxCallers, len(l.callers))
	}
}
