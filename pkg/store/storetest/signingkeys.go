package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/agentid/agentid/pkg/store"
)

// SigningKeyStore is the part of a backend the OAuth key ring uses
// (pkg/authserver/keyring.Store).
type SigningKeyStore interface {
	SigningKeys(ctx context.Context) (store.SigningKeySet, error)
	SwapSigningKeys(ctx context.Context, version uint64, keys []store.SigningKey) (uint64, error)
}

// RunSigningKeys runs the signing key set's conformance tests against the
// stores newStore returns: an empty set at version 0, a swap that moves
// the version by one, a stale version refused with store.ErrConflict and
// an invalid set with store.ErrInvalidArgument (nothing written either
// time), and concurrent swaps from one version of which exactly one wins.
func RunSigningKeys(t *testing.T, newStore func(t testing.TB) SigningKeyStore) {
	ctx := context.Background()
	key := func(id string, i int) store.SigningKey {
		return store.SigningKey{
			ID:        id,
			Private:   []byte(fmt.Sprintf("private key %s", id)),
			CreatedAt: T0.Add(time.Duration(i) * time.Hour),
			ActiveAt:  T0.Add(time.Duration(i+1) * time.Hour),
		}
	}
	read := func(t *testing.T, s SigningKeyStore) store.SigningKeySet {
		t.Helper()
		set, err := s.SigningKeys(ctx)
		if err != nil {
			t.Fatalf("SigningKeys: %v", err)
		}
		return set
	}
	equal := func(t *testing.T, got store.SigningKeySet, version uint64, keys ...store.SigningKey) {
		t.Helper()
		if got.Version != version || len(got.Keys) != len(keys) {
			t.Fatalf("set = version %d with %d keys, want version %d with %d", got.Version, len(got.Keys), version, len(keys))
		}
		for i, k := range keys {
			g := got.Keys[i]
			if g.ID != k.ID || string(g.Private) != string(k.Private) || !g.CreatedAt.Equal(k.CreatedAt) || !g.ActiveAt.Equal(k.ActiveAt) {
				t.Errorf("key %d = %+v, want %+v", i, g, k)
			}
		}
	}

	t.Run("SwapAndRead", func(t *testing.T) {
		s := newStore(t)
		equal(t, read(t, s), 0)
		a, b := key("a", 0), key("b", 1)
		v, err := s.SwapSigningKeys(ctx, 0, []store.SigningKey{a})
		if err != nil || v != 1 {
			t.Fatalf("SwapSigningKeys(0) = %d, %v; want 1, nil", v, err)
		}
		equal(t, read(t, s), 1, a)
		if v, err = s.SwapSigningKeys(ctx, 1, []store.SigningKey{a, b}); err != nil || v != 2 {
			t.Fatalf("SwapSigningKeys(1) = %d, %v; want 2, nil", v, err)
		}
		equal(t, read(t, s), 2, a, b)
		if v, err = s.SwapSigningKeys(ctx, 2, nil); err != nil || v != 3 {
			t.Fatalf("SwapSigningKeys(2, none) = %d, %v; want 3, nil", v, err)
		}
		equal(t, read(t, s), 3)
	})

	t.Run("Rejects", func(t *testing.T) {
		s := newStore(t)
		a := key("a", 0)
		if _, err := s.SwapSigningKeys(ctx, 0, []store.SigningKey{a}); err != nil {
			t.Fatal(err)
		}
		_, err := s.SwapSigningKeys(ctx, 0, []store.SigningKey{key("b", 1)})
		if want := "store: changed concurrently: signing keys are at version 1, not 0"; err == nil || err.Error() != want || !errors.Is(err, store.ErrConflict) {
			t.Errorf("stale swap: %v, want %q", err, want)
		}
		noPrivate := key("c", 2)
		noPrivate.Private = nil
		for _, tt := range []struct {
			keys []store.SigningKey
			want string
		}{
			{[]store.SigningKey{a, a}, `store: invalid argument: signing key 1: id "a" appears twice`},
			{[]store.SigningKey{key("", 0)}, "store: invalid argument: signing key 0: id must be 1..128 bytes"},
			{[]store.SigningKey{noPrivate}, `store: invalid argument: signing key "c": private key must be 1..4096 bytes`},
			{make([]store.SigningKey, store.MaxSigningKeys+1), "store: invalid argument: 17 signing keys, at most 16"},
		} {
			_, err := s.SwapSigningKeys(ctx, 1, tt.keys)
			if err == nil || err.Error() != tt.want || !errors.Is(err, store.ErrInvalidArgument) {
				t.Errorf("swap: %v, want %q", err, tt.want)
			}
		}
		equal(t, read(t, s), 1, a) // nothing written
	})

	t.Run("ConcurrentSwaps", func(t *testing.T) {
		s := newStore(t)
		const n = 8
		var (
			wg        sync.WaitGroup
			mu        sync.Mutex
			won       []int
			conflicts int
		)
		for i := range n {
			wg.Go(func() {
				_, err := s.SwapSigningKeys(ctx, 0, []store.SigningKey{key(fmt.Sprint("k", i), i)})
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					won = append(won, i)
				case errors.Is(err, store.ErrConflict):
					conflicts++
				default:
					t.Errorf("swap %d: %v", i, err)
				}
			})
		}
		wg.Wait()
		if len(won) != 1 || conflicts != n-1 {
			t.Fatalf("%d swaps won (%v), %d conflicts; want 1 and %d", len(won), won, conflicts, n-1)
		}
		equal(t, read(t, s), 1, key(fmt.Sprint("k", won[0]), won[0]))
	})
}
