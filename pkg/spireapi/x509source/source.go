// Package x509source holds an X509-SVID and trust bundle minted over the
// SPIRE Server API, for a server that runs beside spire-server without a
// SPIRE agent (agentid-server in the chart's all-in-one mode). It is what
// go-spiffe's workloadapi.X509Source is for workloads: a source of
// x509svid.Source and x509bundle.Source that keeps itself fresh.
//
//	src, err := x509source.New(ctx, x509source.Config{Minter: spire, ID: id})
//	go src.Run(ctx) // rotates at half-life, re-reads the bundle every 30 s
//	tlsconfig.MTLSServerConfig(src, src, tlsconfig.AuthorizeMemberOf(td))
//
// The key is a fresh P-256 key for each SVID and never leaves the process.
package x509source

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// Minter is what the source needs of the SPIRE Server API
// (pkg/spireapi.Client).
type Minter interface {
	MintX509SVID(ctx context.Context, id spiffeid.ID, key crypto.Signer, ttl time.Duration) (*x509svid.SVID, error)
	GetX509Bundle(ctx context.Context, td spiffeid.TrustDomain) (*x509bundle.Bundle, error)
}

// Clock is the source's time, injected so that tests drive the rotation
// instead of waiting for it.
type Clock interface {
	Now() time.Time
	// After returns a channel that receives once d has passed, as time.After.
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Intervals of Run.
const (
	// BundleRefresh is how often the source re-reads the trust bundle, so a
	// CA rotation in SPIRE reaches the server's peer checks well before the
	// old CA's SVIDs expire.
	BundleRefresh = 30 * time.Second
	// RetryInterval is how long a failed rotation waits before the next try.
	RetryInterval = 5 * time.Second
)

// Config is what the source mints with.
type Config struct {
	// Minter is the SPIRE Server API; required.
	Minter Minter
	// ID is the SPIFFE ID to mint; required. Only its trust domain's bundle
	// is held: peers of other trust domains are refused.
	ID spiffeid.ID
	// Log defaults to a logger that discards.
	Log logrus.FieldLogger
	// Clock defaults to the system clock.
	Clock Clock
}

// Source is an X509-SVID and bundle source backed by the SPIRE Server API:
// a fresh key and SVID at start and again at half of each SVID's life.
type Source struct {
	minter Minter
	id     spiffeid.ID
	log    logrus.FieldLogger
	clock  Clock

	mu     sync.RWMutex
	svid   *x509svid.SVID
	bundle *x509bundle.Bundle
}

// New mints the first SVID and reads the bundle, failing if either cannot be
// had: a server without an identity must not start serving.
func New(ctx context.Context, c Config) (*Source, error) {
	if c.Minter == nil || c.ID.IsZero() {
		return nil, errors.New("x509source: minter and SPIFFE ID are required")
	}
	s := &Source{minter: c.Minter, id: c.ID, log: c.Log, clock: c.Clock}
	if s.log == nil {
		l := logrus.New()
		l.Out = discard{}
		s.log = l
	}
	if s.clock == nil {
		s.clock = realClock{}
	}
	if err := s.mint(ctx); err != nil {
		return nil, err
	}
	if err := s.refreshBundle(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Source) mint(ctx context.Context) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("x509source: failed to generate key: %w", err)
	}
	svid, err := s.minter.MintX509SVID(ctx, s.id, key, 0)
	if err != nil {
		return fmt.Errorf("x509source: failed to mint X509-SVID for %s: %w", s.id, err)
	}
	if len(svid.Certificates) == 0 {
		return fmt.Errorf("x509source: minted X509-SVID for %s has no certificate", s.id)
	}
	s.mu.Lock()
	s.svid = svid
	s.mu.Unlock()
	return nil
}

func (s *Source) refreshBundle(ctx context.Context) error {
	b, err := s.minter.GetX509Bundle(ctx, s.id.TrustDomain())
	if err != nil {
		return fmt.Errorf("x509source: failed to read trust bundle: %w", err)
	}
	s.mu.Lock()
	s.bundle = b
	s.mu.Unlock()
	return nil
}

// rotateAt is half-way through the SVID's life.
func (s *Source) rotateAt() time.Time {
	s.mu.RLock()
	defer s.mu.RUnlock()
	leaf := s.svid.Certificates[0]
	return leaf.NotBefore.Add(leaf.NotAfter.Sub(leaf.NotBefore) / 2)
}

// Run rotates the SVID at half-life and refreshes the bundle every
// BundleRefresh until ctx ends; it returns nil then. A failed rotation is
// logged and retried every RetryInterval; the old SVID stays in use until it
// expires, after which peers refuse it (fail closed) and the log says why. A
// failed bundle refresh keeps the bundle held.
func (s *Source) Run(ctx context.Context) error {
	nextBundle := s.clock.Now().Add(BundleRefresh)
	nextRotate := s.rotateAt()
	for {
		next := nextRotate
		if nextBundle.Before(next) {
			next = nextBundle
		}
		wait := max(next.Sub(s.clock.Now()), 0)
		select {
		case <-ctx.Done():
			return nil
		case <-s.clock.After(wait):
		}
		now := s.clock.Now()
		if !now.Before(nextBundle) {
			if err := s.refreshBundle(ctx); err != nil {
				s.log.WithError(err).Warn("Failed to refresh trust bundle")
			}
			nextBundle = now.Add(BundleRefresh)
		}
		if now.Before(nextRotate) {
			continue
		}
		if err := s.mint(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			s.log.WithError(err).Error("Failed to rotate X509-SVID; retrying")
			nextRotate = now.Add(RetryInterval)
			continue
		}
		nextRotate = s.rotateAt()
		s.log.WithField("expires_at", s.expiry()).Info("Rotated X509-SVID")
	}
}

func (s *Source) expiry() time.Time {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.svid.Certificates[0].NotAfter
}

// GetX509SVID implements x509svid.Source.
func (s *Source) GetX509SVID() (*x509svid.SVID, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.svid, nil
}

// GetX509BundleForTrustDomain implements x509bundle.Source. Only the
// source's own trust domain is trusted.
func (s *Source) GetX509BundleForTrustDomain(td spiffeid.TrustDomain) (*x509bundle.Bundle, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if td != s.bundle.TrustDomain() {
		return nil, fmt.Errorf("x509source: no bundle for trust domain %q", td)
	}
	return s.bundle, nil
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
