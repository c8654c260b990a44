package x509source_test

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"math/big"
	"sync"
	"testing"
	"time"

	"crypto/rand"
	"github.com/agentid/agentid/pkg/spireapi/x509source"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

var (
	serverID = spiffeid.RequireFromString("spiffe://example.org/agentid-server")
	t0       = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
)

// fakeClock hands each After to the test, which moves the time and fires it.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	afters chan after
}

type after struct {
	d  time.Duration
	ch chan time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	ch := make(chan time.Time, 1)
	c.afters <- after{d, ch}
	return ch
}

// await waits until Run asks for its next After (so the work of the last
// tick is done) and checks its duration.
func (c *fakeClock) await(t *testing.T, want time.Duration) after {
	t.Helper()
	select {
	case a := <-c.afters:
		if a.d != want {
			t.Fatalf("Run waits %s, want %s", a.d, want)
		}
		return a
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not wait")
	}
	return after{}
}

// fire moves the clock by a's duration and fires it.
func (c *fakeClock) fire(a after) {
	c.mu.Lock()
	c.now = c.now.Add(a.d)
	now := c.now
	c.mu.Unlock()
	a.ch <- now
}

// fakeMinter mints SVIDs valid for ttl from the fake clock's now, and
// fails while err is set.
type fakeMinter struct {
	clock *fakeClock
	ttl   time.Duration

	mu       sync.Mutex
	mintErr  error
	mints    int
	bundles  int
	keys     []crypto.PublicKey
	bundleTD spiffeid.TrustDomain
}

func (m *fakeMinter) MintX509SVID(_ context.Context, id spiffeid.ID, key crypto.Signer, ttl time.Duration) (*x509svid.SVID, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.mintErr != nil {
		return nil, m.mintErr
	}
	if ttl != 0 {
		return nil, errors.New("the source must leave the TTL to SPIRE")
	}
	m.mints++
	m.keys = append(m.keys, key.Public())
	now := m.clock.Now()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(int64(m.mints)), NotBefore: now, NotAfter: now.Add(m.ttl), URIs: nil}
	tmpl.URIs = append(tmpl.URIs, id.URL())
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &x509svid.SVID{ID: id, Certificates: []*x509.Certificate{cert}, PrivateKey: key}, nil
}

func (m *fakeMinter) GetX509Bundle(_ context.Context, td spiffeid.TrustDomain) (*x509bundle.Bundle, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.bundles++
	m.bundleTD = td
	return x509bundle.New(td), nil
}

func (m *fakeMinter) counts() (int, int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.mints, m.bundles
}

func (m *fakeMinter) fail(err error) {
	m.mu.Lock()
	m.mintErr = err
	m.mu.Unlock()
}

func TestRotation(t *testing.T) {
	clock := &fakeClock{now: t0, afters: make(chan after)}
	m := &fakeMinter{clock: clock, ttl: time.Minute}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	src, err := x509source.New(ctx, x509source.Config{Minter: m, ID: serverID, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	first, err := src.GetX509SVID()
	if err != nil || first.ID != serverID || m.bundleTD != serverID.TrustDomain() {
		t.Fatalf("first SVID %v, %v; bundle of %s", first, err, m.bundleTD)
	}
	if b, err := src.GetX509BundleForTrustDomain(serverID.TrustDomain()); err != nil || b.TrustDomain() != serverID.TrustDomain() {
		t.Fatalf("bundle: %v, %v", b, err)
	}
	other := spiffeid.RequireTrustDomainFromString("other.org")
	if _, err := src.GetX509BundleForTrustDomain(other); err == nil || err.Error() != `x509source: no bundle for trust domain "other.org"` {
		t.Fatalf("foreign bundle: %v", err)
	}

	done := make(chan error, 1)
	go func() { done <- src.Run(ctx) }()
	check := func(when string, wantMints, wantBundles int) {
		t.Helper()
		if mints, bundles := m.counts(); mints != wantMints || bundles != wantBundles {
			t.Fatalf("%s: %d mints, %d bundle reads; want %d and %d", when, mints, bundles, wantMints, wantBundles)
		}
	}
	// 1-minute SVIDs rotate at half-life, 30 s, which is also the bundle's
	// refresh interval.
	clock.fire(clock.await(t, 30*time.Second))
	a := clock.await(t, 30*time.Second)
	check("at 30 s", 2, 2)
	clock.fire(a)
	a = clock.await(t, 30*time.Second)
	check("at 60 s", 3, 3)
	held, _ := src.GetX509SVID()
	if !held.Certificates[0].NotBefore.Equal(t0.Add(time.Minute)) {
		t.Fatalf("SVID at 60 s: not before %s", held.Certificates[0].NotBefore)
	}
	// SPIRE goes away at 90 s: the rotation is retried every RetryInterval,
	// the SVID held stays, the bundle refresh keeps its own interval.
	m.fail(errors.New("spire down"))
	clock.fire(a)
	a = clock.await(t, x509source.RetryInterval)
	check("at 90 s", 3, 4)
	clock.fire(a)
	a = clock.await(t, x509source.RetryInterval)
	if now, _ := src.GetX509SVID(); now != held {
		t.Fatal("a failed rotation replaced the SVID")
	}
	m.fail(nil)
	clock.fire(a)
	// Rotated at 100 s; the next bundle refresh (120 s) comes before the
	// next rotation (130 s).
	clock.await(t, 20*time.Second)
	check("at 100 s", 4, 4)
	if rotated, _ := src.GetX509SVID(); !rotated.Certificates[0].NotBefore.Equal(t0.Add(100 * time.Second)) {
		t.Fatalf("SVID after the retry: not before %s", rotated.Certificates[0].NotBefore)
	}
	if m.keys[0] == m.keys[1] || m.keys[1] == m.keys[2] {
		t.Fatal("a rotation reused the key")
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run = %v, want nil after cancel", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not end with its context")
	}
}

func TestNewFails(t *testing.T) {
	clock := &fakeClock{now: t0, afters: make(chan after)}
	m := &fakeMinter{clock: clock, ttl: time.Minute, mintErr: errors.New("spire down")}
	if _, err := x509source.New(context.Background(), x509source.Config{Minter: m, ID: serverID, Clock: clock}); err == nil ||
		err.Error() != "x509source: failed to mint X509-SVID for spiffe://example.org/agentid-server: spire down" {
		t.Fatalf("New with SPIRE down = %v", err)
	}
	if _, err := x509source.New(context.Background(), x509source.Config{ID: serverID}); err == nil || err.Error() != "x509source: minter and SPIFFE ID are required" {
		t.Fatalf("New without a minter = %v", err)
	}
}
