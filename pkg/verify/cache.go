package verify

import (
	"crypto"
	"crypto/sha256"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// entry is a token whose signature, audience, claims and time window were
// verified. What depends on the request or may change (the peer, revocation,
// the clock, the bundle) is checked again on every hit.
type entry struct {
	principal Principal
	notAfter  time.Time // min(exp + skew, delegation expires_at)
	td        spiffeid.TrustDomain
	kid       string
	key       crypto.PublicKey
}

// cache maps sha256(token) to verified entries. It is bounded: when full it
// drops expired entries, then arbitrary ones, down to 7/8 of its size, so the
// sweep is paid once per size/8 insertions.
type cache struct {
	mu      sync.RWMutex
	max     int
	entries map[[sha256.Size]byte]*entry
}

func newCache(max int) *cache {
	if max <= 0 {
		return nil
	}
	return &cache{max: max, entries: make(map[[sha256.Size]byte]*entry)}
}

func (c *cache) get(key [sha256.Size]byte) *entry {
	if c == nil {
		return nil
	}
	c.mu.RLock()
	e := c.entries[key]
	c.mu.RUnlock()
	return e
}

func (c *cache) put(key [sha256.Size]byte, e *entry, now time.Time) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= c.max {
		for k, old := range c.entries {
			if !now.Before(old.notAfter) {
				delete(c.entries, k)
			}
		}
		for k := range c.entries {
			if len(c.entries) < c.max-c.max/8 {
				break
			}
			delete(c.entries, k)
		}
	}
	c.entries[key] = e
}

func (c *cache) remove(key [sha256.Size]byte) {
	if c == nil {
		return
	}
	c.mu.Lock()
	delete(c.entries, key)
	c.mu.Unlock()
}

func (c *cache) len() int {
	if c == nil {
		return 0
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.entries)
}
