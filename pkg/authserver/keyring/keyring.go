// Package keyring keeps agentid-server's own OAuth signing keys (ES256): it
// makes them, stores them (so every replica signs with the same key and
// publishes the same JWKS), rotates them and answers which key signs now and
// which keys the JWKS holds.
//
// A rotation never leaves a resource server with a cached JWKS that lacks a
// live key:
//
//   - a new key is published PublishAhead before it signs anything, and the
//     JWKS is served with a max-age (MaxAge) well inside PublishAhead, so every
//     cache has fetched it by the time a token names it;
//   - a replaced key stays published Retain after it stopped signing, which
//     must be at least the longest access token lifetime plus clock skew, so no
//     token in flight names a key that left the JWKS.
//
// The first key of an empty store signs at once: no cache knows any key yet.
//
// Keys are made and swapped in the store with a version check, so two
// replicas rotating at the same moment cannot both install a key: the loser
// reads the winner's set. Each replica reloads the set every CheckInterval,
// and picks the signing key from it on every call by its own clock.
package keyring

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync/atomic"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/agentid/agentid/pkg/store"
)

// Defaults for zero Config fields.
const (
	// DefaultRotationPeriod is how long a key signs before the next takes over.
	DefaultRotationPeriod = 24 * time.Hour
	// DefaultPublishAhead is how long a new key is in the JWKS before it signs.
	DefaultPublishAhead = time.Hour
	// DefaultRetain is how long a replaced key stays in the JWKS: an hour,
	// far above the 5-minute default access token lifetime.
	DefaultRetain = time.Hour
	// DefaultCheckInterval is how often Run reloads the set and rotates.
	DefaultCheckInterval = time.Minute
)

// Algorithm is the only signing algorithm: ES256, which every JOSE library
// verifies and which signs in tens of microseconds.
const Algorithm = jose.ES256

// ErrNoKey means the keyring holds no key that signs now: Refresh has not
// succeeded yet. Callers fail closed (no token).
var ErrNoKey = errors.New("keyring: no signing key")

// Store is what the keyring needs of the server's store (boltstore and
// pgstore implement it).
type Store interface {
	// SigningKeys returns the stored set; Version 0 when none was stored.
	SigningKeys(ctx context.Context) (store.SigningKeySet, error)
	// SwapSigningKeys replaces the set if its version is still version and
	// returns the new version; store.ErrConflict when another writer won.
	SwapSigningKeys(ctx context.Context, version uint64, keys []store.SigningKey) (uint64, error)
}

// Config configures a Keyring. Store is required.
type Config struct {
	Store Store
	// Clock returns the current time. Default time.Now.
	Clock func() time.Time
	// RotationPeriod is how long each key signs. Default
	// DefaultRotationPeriod; at least 2×PublishAhead.
	RotationPeriod time.Duration
	// PublishAhead is how long a new key is published before it signs.
	// Default DefaultPublishAhead; at least 2×CheckInterval.
	PublishAhead time.Duration
	// Retain is how long a replaced key stays published. It must be at
	// least the longest access token lifetime plus the resource servers'
	// clock skew. Default DefaultRetain.
	Retain time.Duration
	// CheckInterval is how often Run reloads and rotates. Default
	// DefaultCheckInterval.
	CheckInterval time.Duration
	// OnError is told about a failed Run cycle (the keyring keeps its last
	// set and retries at the next tick). Default: ignored.
	OnError func(error)
	// Rand is the source of key material. Default crypto/rand.Reader.
	Rand io.Reader
}

// Keyring is safe for concurrent use.
type Keyring struct {
	config Config
	state  atomic.Pointer[state]
}

type key struct {
	id       string
	activeAt time.Time
	private  *ecdsa.PrivateKey
	signer   jose.Signer
}

type state struct {
	version uint64
	keys    []*key // by activeAt, oldest first
	jwks    []byte
}

// New checks config and returns a Keyring with no keys: call Refresh (or
// Run) before signing.
func New(config Config) (*Keyring, error) {
	if config.Store == nil {
		return nil, errors.New("keyring: store is required")
	}
	if config.Clock == nil {
		config.Clock = time.Now
	}
	if config.RotationPeriod == 0 {
		config.RotationPeriod = DefaultRotationPeriod
	}
	if config.PublishAhead == 0 {
		config.PublishAhead = DefaultPublishAhead
	}
	if config.Retain == 0 {
		config.Retain = DefaultRetain
	}
	if config.CheckInterval == 0 {
		config.CheckInterval = DefaultCheckInterval
	}
	if config.OnError == nil {
		config.OnError = func(error) {}
	}
	if config.Rand == nil {
		config.Rand = rand.Reader
	}
	switch {
	case config.CheckInterval < 0 || config.Retain < 0:
		return nil, errors.New("keyring: negative check interval or retention")
	case config.PublishAhead < 2*config.CheckInterval:
		return nil, fmt.Errorf("keyring: publish ahead %s is under twice the check interval %s", config.PublishAhead, config.CheckInterval)
	case config.RotationPeriod < 2*config.PublishAhead:
		return nil, fmt.Errorf("keyring: rotation period %s is under twice publish ahead %s", config.RotationPeriod, config.PublishAhead)
	}
	return &Keyring{config: config}, nil
}

// MaxAge is the Cache-Control max-age to serve the JWKS with: half of
// PublishAhead less one check interval, so a cache fetched from a replica
// that has not reloaded the set yet is still refreshed before the new key signs.
func (k *Keyring) MaxAge() time.Duration {
	return (k.config.PublishAhead - k.config.CheckInterval) / 2
}

// Run refreshes every CheckInterval until ctx ends, and returns nil then.
func (k *Keyring) Run(ctx context.Context) error {
	t := time.NewTicker(k.config.CheckInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if err := k.Refresh(ctx); err != nil {
				k.config.OnError(err)
			}
		}
	}
}

// Refresh loads the stored set, rotates it when due (a new key when the
// signing key's period is ending, old keys dropped after Retain), stores the
// change and makes it the keyring's set.
func (k *Keyring) Refresh(ctx context.Context) error {
	for attempt := 0; ; attempt++ {
		set, err := k.config.Store.SigningKeys(ctx)
		if err != nil {
			return fmt.Errorf("keyring: failed to read signing keys: %w", err)
		}
		next, changed, err := k.plan(set.Keys, k.config.Clock())
		if err != nil {
			return err
		}
		version := set.Version
		if changed {
			version, err = k.config.Store.SwapSigningKeys(ctx, set.Version, next)
			if errors.Is(err, store.ErrConflict) && attempt < 3 {
				continue // another replica rotated: take its set
			}
			if err != nil {
				return fmt.Errorf("keyring: failed to store signing keys: %w", err)
			}
		}
		return k.install(version, next)
	}
}

// plan returns the set as it should be at now.
func (k *Keyring) plan(stored []store.SigningKey, now time.Time) ([]store.SigningKey, bool, error) {
	keys := slices.Clone(stored)
	slices.SortStableFunc(keys, func(a, b store.SigningKey) int { return a.ActiveAt.Compare(b.ActiveAt) })
	changed := false
	// Drop keys replaced more than Retain ago (never the signing one).
	for len(keys) > 1 && !keys[1].ActiveAt.After(now) && !now.Before(keys[1].ActiveAt.Add(k.config.Retain)) {
		keys = keys[1:]
		changed = true
	}
	current := -1
	for i, sk := range keys {
		if !sk.ActiveAt.After(now) {
			current = i
		}
	}
	pending := len(keys) - 1 - current
	switch {
	case len(keys) == 0:
		sk, err := k.newKey(now, now)
		if err != nil {
			return nil, false, err
		}
		return []store.SigningKey{sk}, true, nil
	case pending == 0 && !now.Before(keys[current].ActiveAt.Add(k.config.RotationPeriod-k.config.PublishAhead)):
		sk, err := k.newKey(now, now.Add(k.config.PublishAhead))
		if err != nil {
			return nil, false, err
		}
		keys = append(keys, sk)
		changed = true
	}
	return keys, changed, nil
}

func (k *Keyring) newKey(now, activeAt time.Time) (store.SigningKey, error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), k.config.Rand)
	if err != nil {
		return store.SigningKey{}, fmt.Errorf("keyring: failed to generate key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return store.SigningKey{}, fmt.Errorf("keyring: failed to encode key: %w", err)
	}
	id, err := keyID(&priv.PublicKey)
	if err != nil {
		return store.SigningKey{}, err
	}
	return store.SigningKey{ID: id, Private: der, CreatedAt: now, ActiveAt: activeAt}, nil
}

// keyID is the RFC 7638 thumbprint of the public key: stable, and the same
// on every replica without coordination.
func keyID(pub *ecdsa.PublicKey) (string, error) {
	jwk := jose.JSONWebKey{Key: pub}
	tp, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("keyring: failed to compute key id: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(tp), nil
}

func (k *Keyring) install(version uint64, stored []store.SigningKey) error {
	if cur := k.state.Load(); cur != nil && cur.version == version && len(cur.keys) == len(stored) {
		return nil
	}
	st := &state{version: version}
	var set jose.JSONWebKeySet
	for _, sk := range stored {
		parsed, err := x509.ParsePKCS8PrivateKey(sk.Private)
		if err != nil {
			return fmt.Errorf("keyring: stored key %q is malformed: %w", sk.ID, err)
		}
		priv, ok := parsed.(*ecdsa.PrivateKey)
		if !ok || priv.Curve != elliptic.P256() {
			return fmt.Errorf("keyring: stored key %q is not an ECDSA P-256 key", sk.ID)
		}
		if id, err := keyID(&priv.PublicKey); err != nil || id != sk.ID {
			return fmt.Errorf("keyring: stored key %q does not match its id", sk.ID)
		}
		opts := (&jose.SignerOptions{}).WithType(jose.ContentType("at+jwt")).WithHeader(jose.HeaderKey("kid"), sk.ID)
		signer, err := jose.NewSigner(jose.SigningKey{Algorithm: Algorithm, Key: priv}, opts)
		if err != nil {
			return fmt.Errorf("keyring: failed to make a signer for %q: %w", sk.ID, err)
		}
		st.keys = append(st.keys, &key{id: sk.ID, activeAt: sk.ActiveAt, private: priv, signer: signer})
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: &priv.PublicKey, KeyID: sk.ID, Algorithm: string(Algorithm), Use: "sig"})
	}
	b, err := json.Marshal(set)
	if err != nil {
		return fmt.Errorf("keyring: failed to encode the JWKS: %w", err)
	}
	st.jwks = b
	k.state.Store(st)
	return nil
}

// current returns the key that signs at now: the latest active one, or the
// earliest when the clock went back before all of them.
func (st *state) current(now time.Time) *key {
	if st == nil || len(st.keys) == 0 {
		return nil
	}
	cur := st.keys[0]
	for _, k := range st.keys[1:] {
		if !k.activeAt.After(now) {
			cur = k
		}
	}
	return cur
}

// Sign signs payload as a compact JWS with the key that signs now (header
// alg ES256, typ at+jwt, kid). ErrNoKey before a successful Refresh.
func (k *Keyring) Sign(payload []byte) (token, kid string, err error) {
	cur := k.state.Load().current(k.config.Clock())
	if cur == nil {
		return "", "", ErrNoKey
	}
	jws, err := cur.signer.Sign(payload)
	if err != nil {
		return "", "", fmt.Errorf("keyring: failed to sign: %w", err)
	}
	token, err = jws.CompactSerialize()
	if err != nil {
		return "", "", fmt.Errorf("keyring: failed to serialize: %w", err)
	}
	return token, cur.id, nil
}

// JWKS returns the public keys to publish, as a JSON Web Key Set document;
// nil before a successful Refresh.
func (k *Keyring) JWKS() []byte {
	if st := k.state.Load(); st != nil {
		return st.jwks
	}
	return nil
}

// SigningKeyID returns the kid of the key that signs now, "" without one.
func (k *Keyring) SigningKeyID() string {
	if cur := k.state.Load().current(k.config.Clock()); cur != nil {
		return cur.id
	}
	return ""
}

// PublicKey returns the published key with id kid, for checking tokens this
// server issued (introspection).
func (k *Keyring) PublicKey(kid string) (*ecdsa.PublicKey, bool) {
	st := k.state.Load()
	if st == nil {
		return nil, false
	}
	for _, key := range st.keys {
		if key.id == kid {
			return &key.private.PublicKey, true
		}
	}
	return nil, false
}
