package server

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Purging expired delegations. Nothing else deletes a delegation, so
// without it the store file and the revoked-only watch snapshot (which
// lists every revoked delegation still stored) would grow forever.
const (
	// PurgeRetention is how long after its expiry a delegation is kept. No
	// one needs it past expiry: verifiers keep a revoked id until its expiry
	// plus 5 minutes of clock skew, the composer until expiry plus 10
	// minutes, and a token minted under it has expired too. A day is far
	// beyond both, and leaves operators a day to look at a recent expiry
	// with GetDelegation; the audit log keeps its events for good.
	PurgeRetention = 24 * time.Hour
	// purgeInterval is how often the server purges. Expiry is not urgent:
	// the interval only bounds how many records one run finds.
	purgeInterval = 10 * time.Minute
	// purgeBatch is the most delegations deleted per store transaction, so
	// a first purge of a large backlog never holds the writer lock long
	// (20 to 30 ms per batch on the dev machine: boltstore's
	// BenchmarkPurgeExpired).
	purgeBatch = 1000
)

// Purge deletes the delegations that expired more than retention ago, in
// transactions of 1,000, and returns how many it deleted. It stops at the
// first error, returning the count so far. Delegations the store's revision
// log still names are kept until a later call (see store.Store.PurgeExpired).
// Nothing is recorded in the audit log: a purge decides nothing about any
// delegation (each already has its created and revoked events, which stay),
// and the log format has no event type for it; Run logs each purge and
// counts it in agentid_delegations_purged_total.
func (s *Server) Purge(ctx context.Context, retention time.Duration) (int, error) {
	if retention < 0 {
		return 0, fmt.Errorf("server: purge retention %s is negative", retention)
	}
	before := s.clock().Add(-retention)
	total := 0
	for {
		n, err := s.store.PurgeExpired(ctx, before, purgeBatch)
		total += n
		if err != nil {
			return total, err
		}
		if n < purgeBatch {
			return total, nil
		}
	}
}

// purger runs Purge every purgeInterval for Run and counts what it deletes.
type purger struct {
	s      *Server
	purged prometheus.Counter
}

// newPurger registers agentid_delegations_purged_total on reg (nil: not
// registered).
func newPurger(s *Server, reg prometheus.Registerer) (*purger, error) {
	p := &purger{s: s, purged: prometheus.NewCounter(prometheus.CounterOpts{
		Name: "agentid_delegations_purged_total",
		Help: "Delegations deleted from the store more than a day after their expiry.",
	})}
	if reg != nil {
		if err := reg.Register(p.purged); err != nil {
			return nil, fmt.Errorf("server: %w", err)
		}
	}
	return p, nil
}

// run purges once at once, then every purgeInterval, until ctx ends. A
// failed purge is logged and retried at the next tick: it must not stop a
// server that serves fine.
func (p *purger) run(ctx context.Context) error {
	t := time.NewTicker(purgeInterval)
	defer t.Stop()
	for {
		p.once(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// once runs one Purge, counts and logs it.
func (p *purger) once(ctx context.Context) {
	start := time.Now()
	n, err := p.s.Purge(ctx, PurgeRetention)
	p.purged.Add(float64(n))
	log := p.s.log.WithField("purged", n).WithField("duration", time.Since(start).Round(time.Millisecond))
	switch {
	case errors.Is(err, context.Canceled):
	case err != nil:
		log.WithError(err).Warn("Failed to purge expired delegations; retrying at the next interval")
	case n > 0:
		log.Info("Purged delegations expired more than a day ago")
	}
}
