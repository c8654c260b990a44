package keyring_test

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/agentid/agentid/pkg/authserver/keyring"
	"github.com/agentid/agentid/pkg/store"
	"github.com/agentid/agentid/pkg/store/boltstore"
)

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func openStore(t testing.TB) *boltstore.Store {
	t.Helper()
	st, err := boltstore.Open(filepath.Join(t.TempDir(), "agentid.db"), boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func newKeyring(t testing.TB, st keyring.Store, c *clock) *keyring.Keyring {
	t.Helper()
	k, err := keyring.New(keyring.Config{
		Store: st, Clock: c.Now, RotationPeriod: 24 * time.Hour, PublishAhead: time.Hour,
		Retain: 10 * time.Minute, CheckInterval: time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func verifyWith(t testing.TB, jwks []byte, token string) error {
	t.Helper()
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(jwks, &set); err != nil {
		t.Fatal(err)
	}
	jws, err := jose.ParseSignedCompact(token, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatal(err)
	}
	keys := set.Key(jws.Signatures[0].Header.KeyID)
	if len(keys) != 1 {
		return errors.New("kid not in the cached JWKS")
	}
	_, err = jws.Verify(keys[0].Key)
	return err
}

// TestRotationNeverMissesACachedKey runs four days of a server rotating daily
// and a resource server that caches the JWKS for MaxAge, fetching it only
// when its copy is older than that (never on an unknown kid): every token
// issued at any minute verifies against the copy the resource server holds
// then and for its whole 5-minute lifetime.
func TestRotationNeverMissesACachedKey(t *testing.T) {
	c := &clock{now: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)}
	k := newKeyring(t, openStore(t), c)
	if _, _, err := k.Sign([]byte(`{}`)); !errors.Is(err, keyring.ErrNoKey) {
		t.Fatalf("Sign before Refresh: %v, want ErrNoKey", err)
	}
	ctx := context.Background()
	if err := k.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	var cached []byte
	var fetchedAt time.Time
	type inflight struct {
		token   string
		expires time.Time
	}
	var live []inflight
	kids := map[string]bool{}
	for minute := 0; minute < 4*24*60; minute++ {
		if err := k.Refresh(ctx); err != nil {
			t.Fatal(err)
		}
		if cached == nil || c.Now().Sub(fetchedAt) >= k.MaxAge() {
			cached, fetchedAt = k.JWKS(), c.Now()
		}
		tok, kid, err := k.Sign([]byte(`{"sub":"x"}`))
		if err != nil {
			t.Fatal(err)
		}
		kids[kid] = true
		live = append(live, inflight{tok, c.Now().Add(5 * time.Minute)})
		kept := live[:0]
		for _, l := range live {
			if c.Now().After(l.expires) {
				continue
			}
			if err := verifyWith(t, cached, l.token); err != nil {
				t.Fatalf("minute %d: a live token does not verify with the cached JWKS: %v", minute, err)
			}
			kept = append(kept, l)
		}
		live = kept
		c.Add(time.Minute)
	}
	if len(kids) < 4 || len(kids) > 5 {
		t.Fatalf("%d signing keys in 4 days of daily rotation", len(kids))
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(k.JWKS(), &set); err != nil {
		t.Fatal(err)
	}
	if n := len(set.Keys); n < 1 || n > 3 {
		t.Fatalf("JWKS holds %d keys, want the signing key and at most one old and one new", n)
	}
	for _, key := range set.Keys {
		if !key.IsPublic() || key.Algorithm != "ES256" || key.Use != "sig" {
			t.Fatalf("JWKS key %q: public %v alg %q use %q", key.KeyID, key.IsPublic(), key.Algorithm, key.Use)
		}
	}
}

func TestFirstKeySignsAtOnceAndNewKeysWait(t *testing.T) {
	c := &clock{now: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)}
	st := openStore(t)
	k := newKeyring(t, st, c)
	ctx := context.Background()
	if err := k.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	first := k.SigningKeyID()
	if first == "" {
		t.Fatal("no signing key after the first Refresh")
	}
	c.Add(23 * time.Hour) // RotationPeriod − PublishAhead: the next key is made
	if err := k.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	set, _ := st.SigningKeys(ctx)
	if len(set.Keys) != 2 {
		t.Fatalf("%d stored keys, want 2", len(set.Keys))
	}
	if got := k.SigningKeyID(); got != first {
		t.Fatalf("signing with %q before the new key's publish-ahead passed", got)
	}
	c.Add(time.Hour)
	if got := k.SigningKeyID(); got == first || got != set.Keys[1].ID {
		t.Fatalf("signing with %q after the new key became active, want %q", got, set.Keys[1].ID)
	}
	c.Add(10 * time.Minute) // Retain after the switch: the first key leaves
	if err := k.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	set, _ = st.SigningKeys(ctx)
	if len(set.Keys) != 1 || set.Keys[0].ID == first {
		t.Fatalf("stored keys after retention: %+v", set.Keys)
	}
}

// TestReplicasAgree: two keyrings on one store (two replicas) rotate at the
// same instant; only one new key is installed and both sign with it.
func TestReplicasAgree(t *testing.T) {
	c := &clock{now: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)}
	st := openStore(t)
	a, b := newKeyring(t, st, c), newKeyring(t, st, c)
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, k := range []*keyring.Keyring{a, b} {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = k.Refresh(ctx) }()
	}
	wg.Wait()
	if errs[0] != nil || errs[1] != nil {
		t.Fatal(errs)
	}
	if a.SigningKeyID() != b.SigningKeyID() || a.SigningKeyID() == "" {
		t.Fatalf("replicas sign with %q and %q", a.SigningKeyID(), b.SigningKeyID())
	}
	set, _ := st.SigningKeys(ctx)
	if len(set.Keys) != 1 {
		t.Fatalf("%d keys stored by two replicas starting together", len(set.Keys))
	}
}

func TestStoredKeyTamperedIsRefused(t *testing.T) {
	c := &clock{now: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)}
	st := openStore(t)
	ctx := context.Background()
	if err := newKeyring(t, st, c).Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	set, _ := st.SigningKeys(ctx)
	set.Keys[0].ID = "another-id"
	if _, err := st.SwapSigningKeys(ctx, set.Version, set.Keys); err != nil {
		t.Fatal(err)
	}
	err := newKeyring(t, st, c).Refresh(ctx)
	if err == nil || err.Error() != `keyring: stored key "another-id" does not match its id` {
		t.Fatalf("Refresh over a tampered key: %v", err)
	}
}

func TestSwapConflict(t *testing.T) {
	st := openStore(t)
	ctx := context.Background()
	k := store.SigningKey{ID: "a", Private: []byte{1}, CreatedAt: time.Unix(1, 0), ActiveAt: time.Unix(1, 0)}
	v, err := st.SwapSigningKeys(ctx, 0, []store.SigningKey{k})
	if err != nil || v != 1 {
		t.Fatalf("first swap: %d, %v", v, err)
	}
	if _, err := st.SwapSigningKeys(ctx, 0, nil); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("stale swap: %v, want ErrConflict", err)
	}
	if _, err := st.SwapSigningKeys(ctx, 1, []store.SigningKey{k, k}); !errors.Is(err, store.ErrInvalidArgument) {
		t.Fatalf("repeated id: %v, want ErrInvalidArgument", err)
	}
}
