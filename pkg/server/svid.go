package server

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

// Minter is what the server needs of the SPIRE Server API to hold an
// identity without a Workload API (pkg/spireapi.Client).
type Minter interface {
	MintX509SVID(ctx context.Context, id spiffeid.ID, key crypto.Signer, ttl time.Duration) (*x509svid.SVID, error)
	GetX509Bundle(ctx context.Context, td spiffeid.TrustDomain) (*x509bundle.Bundle, error)
}

// bundleRefresh is how often a minted identity re-reads the trust bundle, so
// a CA rotation in SPIRE reaches the server's peer checks well before the old
// CA's SVIDs expire.
const bundleRefresh = 30 * time.Second

// mintedSource is an X509-SVID and bundle source backed by the SPIRE admin
// socket: a fresh key and SVID at start and again at half of each SVID's
// life. It satisfies go-spiffe's x509svid.Source and x509bundle.Source.
type mintedSource struct {
	minter Minter
	id     spiffeid.ID
	log    logrus.FieldLogger

	mu     sync.RWMutex
	svid   *x509svid.SVID
	bundle *x509bundle.Bundle
}

// newMintedSource mints the first SVID and reads the bundle, failing if
// either cannot be had: a server without an identity must not start serving.
func newMintedSource(ctx context.Context, m Minter, id spiffeid.ID, log logrus.FieldLogger) (*mintedSource, error) {
	s := &mintedSource{minter: m, id: id, log: log}
	if err := s.mint(ctx); err != nil {
		return nil, err
	}
	if err := s.refreshBundle(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *mintedSource) mint(ctx context.Context) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("failed to generate key: %w", err)
	}
	svid, err := s.minter.MintX509SVID(ctx, s.id, key, 0)
	if err != nil {
		return fmt.Errorf("failed to mint X509-SVID for %s: %w", s.id, err)
	}
	s.mu.Lock()
	s.svid = svid
	s.mu.Unlock()
	return nil
}

func (s *mintedSource) refreshBundle(ctx context.Context) error {
	b, err := s.minter.GetX509Bundle(ctx, s.id.TrustDomain())
	if err != nil {
		return fmt.Errorf("failed to read trust bundle: %w", err)
	}
	s.mu.Lock()
	s.bundle = b
	s.mu.Unlock()
	return nil
}

// rotateAt is half-way through the SVID's life.
func (s *mintedSource) rotateAt() time.Time {
	s.mu.RLock()
	defer s.mu.RUnlock()
	leaf := s.svid.Certificates[0]
	return leaf.NotBefore.Add(leaf.NotAfter.Sub(leaf.NotBefore) / 2)
}

// Run rotates the SVID and refreshes the bundle until ctx ends. A failed
// rotation is retried every few seconds; the old SVID stays in use until it
// expires, after which peers refuse it (fail closed) and the log says why.
func (s *mintedSource) Run(ctx context.Context) error {
	bundleTick := time.NewTicker(bundleRefresh)
	defer bundleTick.Stop()
	for {
		wait := time.Until(s.rotateAt())
		if wait < 0 {
			wait = 0
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil
		case <-bundleTick.C:
			timer.Stop()
			if err := s.refreshBundle(ctx); err != nil {
				s.log.WithError(err).Warn("Failed to refresh trust bundle")
			}
		case <-timer.C:
			if err := s.mint(ctx); err != nil {
				s.log.WithError(err).Error("Failed to rotate X509-SVID; retrying")
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(5 * time.Second):
				}
				continue
			}
			s.log.WithField("expires_at", s.expiry()).Info("Rotated X509-SVID")
		}
	}
}

func (s *mintedSource) expiry() time.Time {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.svid.Certificates[0].NotAfter
}

// GetX509SVID implements x509svid.Source.
func (s *mintedSource) GetX509SVID() (*x509svid.SVID, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.svid == nil {
		return nil, errors.New("no X509-SVID yet")
	}
	return s.svid, nil
}

// GetX509BundleForTrustDomain implements x509bundle.Source. Only the server's
// own trust domain is trusted.
func (s *mintedSource) GetX509BundleForTrustDomain(td spiffeid.TrustDomain) (*x509bundle.Bundle, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.bundle == nil || td != s.bundle.TrustDomain() {
		return nil, fmt.Errorf("no bundle for trust domain %q", td)
	}
	return s.bundle, nil
}
