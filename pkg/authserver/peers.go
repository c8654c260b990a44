package authserver

import (
	"crypto/x509"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// Bounds of the verified client certificate cache.
const (
	// peerCacheTTL is how long a client certificate chain, once verified
	// against the X.509 bundle, is taken as verified again without the
	// chain's signatures being checked: a CA removed from the bundle stops
	// being honoured within it.
	peerCacheTTL = 30 * time.Second
	// peerCacheMax bounds the cache; full, it is emptied.
	peerCacheMax = 4096
)

// peerCache remembers client certificate chains verified against the
// X.509 bundle, by the SHA-256 of the whole chain, so that an agent's
// keep-alive connection does not have its certificate's signatures checked
// again on every request (≈145 µs a grant). It caches only the outcome of
// a deterministic check of the same bytes, never anything of the
// assertion, whose signature, time and delegation are checked on every
// grant: replay protection is unchanged. Expiry is checked on every use.
type peerCache struct {
	mu      sync.Mutex
	entries map[[32]byte]peerEntry
}

type peerEntry struct {
	id    spiffeid.ID
	until time.Time // verified until: min(verification + TTL, leaf's NotAfter)
}

func (s *Server) verifyPeer(chain []*x509.Certificate, key [32]byte) (spiffeid.ID, error) {
	now := s.config.Clock()
	c := &s.peers
	c.mu.Lock()
	e, ok := c.entries[key]
	c.mu.Unlock()
	if ok && now.Before(e.until) {
		return e.id, nil
	}
	id, _, err := x509svid.Verify(chain, s.config.X509Bundles)
	if err != nil {
		return spiffeid.ID{}, err
	}
	until := now.Add(peerCacheTTL)
	if na := chain[0].NotAfter; na.Before(until) {
		until = na
	}
	c.mu.Lock()
	if c.entries == nil || len(c.entries) >= peerCacheMax {
		c.entries = make(map[[32]byte]peerEntry)
	}
	c.entries[key] = peerEntry{id: id, until: until}
	c.mu.Unlock()
	return id, nil
}
