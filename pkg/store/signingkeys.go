package store

import (
	"errors"
	"fmt"
	"time"
)

// SigningKey is one of agentid-server's own OAuth signing keys (ES256), as
// stored. pkg/authserver/keyring decides when keys are made, start signing
// and leave the JWKS; the store only keeps the set, whole, so every replica
// of a server signs and publishes from the same one.
//
// Private holds the private key (PKCS #8 DER) in the clear: whoever can read
// the store file (or the database) can sign access tokens, exactly as whoever
// can write it can create delegations. Protect it accordingly.
type SigningKey struct {
	// ID is the JWS kid.
	ID string
	// Private is the PKCS #8 DER encoding of the ECDSA P-256 private key.
	Private []byte
	// CreatedAt is when the key was made and published in the JWKS.
	CreatedAt time.Time
	// ActiveAt is when it starts signing: after every cached JWKS has had
	// time to learn it.
	ActiveAt time.Time
}

// SigningKeySet is the stored set and its version, which
// SwapSigningKeys compares so two replicas rotating at once cannot both win.
type SigningKeySet struct {
	Version uint64 // 0 for a store that never held keys
	Keys    []SigningKey
}

// ErrConflict is returned by SwapSigningKeys when the stored set is no longer
// the version the caller read: another replica changed it. Nothing is
// written; read the set again.
var ErrConflict = errors.New("store: changed concurrently")

// MaxSigningKeys bounds the stored set: a rotation keeps the signing key,
// the next one and the ones tokens still in flight were signed with.
const MaxSigningKeys = 16

// ValidateSigningKeys checks a set before SwapSigningKeys stores it, the
// same for every backend: at most MaxSigningKeys keys, each with an id of 1
// to 128 bytes used once, 1 to 4096 bytes of private key and both times.
// The error wraps ErrInvalidArgument.
func ValidateSigningKeys(keys []SigningKey) error {
	if len(keys) > MaxSigningKeys {
		return fmt.Errorf("%w: %d signing keys, at most %d", ErrInvalidArgument, len(keys), MaxSigningKeys)
	}
	seen := make(map[string]bool, len(keys))
	for i, k := range keys {
		switch {
		case k.ID == "" || len(k.ID) > 128:
			return fmt.Errorf("%w: signing key %d: id must be 1..128 bytes", ErrInvalidArgument, i)
		case seen[k.ID]:
			return fmt.Errorf("%w: signing key %d: id %q appears twice", ErrInvalidArgument, i, k.ID)
		case len(k.Private) == 0 || len(k.Private) > 4096:
			return fmt.Errorf("%w: signing key %q: private key must be 1..4096 bytes", ErrInvalidArgument, k.ID)
		case k.CreatedAt.IsZero() || k.ActiveAt.IsZero():
			return fmt.Errorf("%w: signing key %q: created and active times are required", ErrInvalidArgument, k.ID)
		}
		seen[k.ID] = true
	}
	return nil
}
