package verify

import (
	"crypto"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/agentid/agentid/pkg/claims"
	"github.com/agentid/agentid/pkg/delegation"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// Principal is who is calling: an agent, proven by its X509-SVID on the
// connection and by the JWT-SVID's sub, acting for a user under a
// delegation.
type Principal struct {
	// Agent is the calling agent's SPIFFE ID: the token's sub, equal to the
	// mTLS peer's SPIFFE ID.
	Agent spiffeid.ID
	// User is the delegating user; the zero User for a plain token.
	User delegation.User
	// Scopes is the authority the user delegated to Agent; empty for a
	// plain token.
	Scopes delegation.ScopeSet
	// Delegation is the grant the token was issued under; zero for a plain
	// token.
	Delegation Delegation
	// Expiry is the token's exp.
	Expiry time.Time
	// NotAfter is the last instant the Verifier accepts the token: Expiry
	// plus the clock skew, or the delegation's expiry if earlier. Transports
	// bound long-lived calls (grpcmw's streams) by it.
	NotAfter time.Time
}

// Delegation identifies the grant behind a token.
type Delegation struct {
	// ID is the delegation the token was issued under.
	ID delegation.ID
	// Root is the first delegation of the chain; revoking it revokes ID.
	Root delegation.ID
	// Chain lists the agents from the one the user delegated to, to Agent.
	Chain []spiffeid.ID
	// ExpiresAt is when the delegation ends; the token never outlives it.
	ExpiresAt time.Time
}

// Delegated reports whether the principal carries delegation claims (false
// only for plain tokens accepted with Config.AllowPlainTokens).
func (p *Principal) Delegated() bool { return !p.Delegation.ID.IsZero() }

// Verifier checks a JWT-SVID against the mTLS peer that presented it. It is
// safe for concurrent use.
type Verifier struct {
	config Config
	cache  *cache
}

// New returns a Verifier for config, or an error naming every invalid field.
func New(config Config) (*Verifier, error) {
	c, err := config.withDefaults()
	if err != nil {
		return nil, err
	}
	return &Verifier{config: c, cache: newCache(c.CacheSize)}, nil
}

// Verify checks that token is a valid JWT-SVID for this service presented by
// peer, the SPIFFE ID of the connection's verified X509-SVID, and returns who
// is calling. It checks, in order: size (before any decoding), the JOSE
// header, the signature against the accepted trust domains' JWT bundles, the
// time window, the audience, the delegation claims (the chain ends with sub),
// then sub == peer and revocation of the delegation and of its root.
//
// A token seen before is found in a cache by its hash; the bundle key, the
// time window, the peer and revocation are still checked on every call.
//
// Errors wrap one of the package's sentinels (see errors.go and ClassOf).
func (v *Verifier) Verify(peer spiffeid.ID, token string) (Principal, error) {
	switch {
	case token == "":
		return Principal{}, ErrNoToken
	case len(token) > MaxTokenSize:
		return Principal{}, fmt.Errorf("%w: %d bytes, at most %d", ErrTokenTooLarge, len(token), MaxTokenSize)
	case peer.IsZero():
		return Principal{}, ErrNoPeer
	}
	now := v.config.Clock()
	key := tokenHash(token)
	e := v.cache.get(key)
	if e != nil && !v.stillSigned(e) {
		// The key was removed from (or replaced in) the bundle: verify
		// afresh, which fails unless another key signed the same bytes.
		v.cache.remove(key)
		e = nil
	}
	if e == nil {
		var err error
		if e, err = v.verifyToken(token, now); err != nil {
			return Principal{}, err
		}
		v.cache.put(key, e, now)
	}
	if !now.Before(e.notAfter) {
		v.cache.remove(key)
		return Principal{}, v.expiredError(e)
	}
	p := e.principal
	if p.Agent != peer {
		return Principal{}, fmt.Errorf("%w: sub %s, peer %s", ErrPeerMismatch, p.Agent, peer)
	}
	if err := v.checkRevocation(&p); err != nil {
		return Principal{}, err
	}
	p.Delegation.Chain = slices.Clone(p.Delegation.Chain)
	return p, nil
}

// tokenHash is the cache key of token. The copy to the stack spares the
// heap the []byte conversion of a string sha256 cannot take.
func tokenHash(token string) [sha256.Size]byte {
	var buf [MaxTokenSize]byte
	return sha256.Sum256(buf[:copy(buf[:], token)])
}

func (v *Verifier) expiredError(e *entry) error {
	if d := e.principal.Delegation; !d.ExpiresAt.IsZero() && !d.ExpiresAt.After(e.principal.Expiry.Add(v.config.ClockSkew)) {
		return fmt.Errorf("%w: delegation expired at %s", ErrExpired, d.ExpiresAt.UTC().Format(time.RFC3339))
	}
	return fmt.Errorf("%w: exp %s", ErrExpired, e.principal.Expiry.UTC().Format(time.RFC3339))
}

func (v *Verifier) stillSigned(e *entry) bool {
	b, err := v.config.Bundles.GetJWTBundleForTrustDomain(e.td)
	if err != nil {
		return false
	}
	k, ok := b.FindJWTAuthority(e.kid)
	if !ok {
		return false
	}
	if k == e.key { // the same object: e.key is a comparable *ecdsa or *rsa key
		return true
	}
	eq, ok := k.(interface{ Equal(crypto.PublicKey) bool })
	return ok && eq.Equal(e.key)
}

func (v *Verifier) checkRevocation(p *Principal) error {
	rc := v.config.Revocation
	if rc == nil || !p.Delegated() { // nil only with InsecureNoRevocation
		return nil
	}
	for _, id := range []delegation.ID{p.Delegation.ID, p.Delegation.Root} {
		revoked, err := rc.Revoked(id)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrRevocationUnknown, err)
		}
		if revoked {
			if id == p.Delegation.ID {
				return fmt.Errorf("%w: %s", ErrRevoked, id)
			}
			return fmt.Errorf("%w: root %s of %s", ErrRevoked, id, p.Delegation.ID)
		}
		if p.Delegation.Root == p.Delegation.ID {
			break
		}
	}
	return nil
}

// verifyToken does everything that depends on the token alone.
func (v *Verifier) verifyToken(token string, now time.Time) (*entry, error) {
	t, err := parseJWS(token)
	if err != nil {
		return nil, err
	}
	e := &entry{kid: t.kid}
	found := false
	var payload []byte
	var sigErr error
	for _, td := range v.config.TrustDomains {
		b, err := v.config.Bundles.GetJWTBundleForTrustDomain(td)
		if err != nil {
			continue
		}
		k, ok := b.FindJWTAuthority(t.kid)
		if !ok {
			continue
		}
		found = true
		if payload, sigErr = t.verify(k); sigErr == nil {
			e.td, e.key = td, k
			break
		}
	}
	switch {
	case !found:
		return nil, fmt.Errorf("%w: no JWT authority %q in the accepted trust domains", ErrUnknownKey, truncate(t.kid))
	case e.key == nil:
		return nil, sigErr
	}
	all, reg, err := decodePayload(payload)
	if err != nil {
		return nil, err
	}
	if reg.sub.TrustDomain() != e.td {
		return nil, fmt.Errorf("%w: sub %s signed by a key of %s", ErrTrustDomain, reg.sub, e.td)
	}
	skew := v.config.ClockSkew
	if !now.Before(reg.exp.Add(skew)) {
		return nil, fmt.Errorf("%w: exp %s", ErrExpired, reg.exp.UTC().Format(time.RFC3339))
	}
	if !reg.nbf.IsZero() && now.Add(skew).Before(reg.nbf) {
		return nil, fmt.Errorf("%w: nbf %s", ErrNotYetValid, reg.nbf.UTC().Format(time.RFC3339))
	}
	if !reg.iat.IsZero() && now.Add(skew).Before(reg.iat) {
		return nil, fmt.Errorf("%w: iat %s", ErrNotYetValid, reg.iat.UTC().Format(time.RFC3339))
	}
	if !v.audienceAccepted(reg.aud) {
		return nil, fmt.Errorf("%w: token audiences %q", ErrAudience, truncateList(reg.aud))
	}
	e.principal = Principal{Agent: reg.sub, Expiry: reg.exp}
	e.notAfter = reg.exp.Add(skew)
	c, err := claims.Decode(all, reg.sub)
	switch {
	case errors.Is(err, claims.ErrNoDelegation) && v.config.AllowPlainTokens:
		e.principal.NotAfter = e.notAfter
		return e, nil
	case err != nil:
		return nil, fmt.Errorf("verify: %w", err)
	}
	if !now.Before(c.ExpiresAt) {
		return nil, fmt.Errorf("%w: delegation expired at %s", ErrExpired, c.ExpiresAt.UTC().Format(time.RFC3339))
	}
	e.principal.User, e.principal.Scopes = c.User, c.Scopes
	e.principal.Delegation = Delegation{ID: c.ID, Root: c.Root, Chain: c.Chain, ExpiresAt: c.ExpiresAt}
	if c.ExpiresAt.Before(e.notAfter) {
		e.notAfter = c.ExpiresAt
	}
	e.principal.NotAfter = e.notAfter
	return e, nil
}

func (v *Verifier) audienceAccepted(aud []string) bool {
	for _, a := range aud {
		if slices.Contains(v.config.Audiences, a) {
			return true
		}
	}
	return false
}

func truncateList(list []string) []string {
	const max = 4
	out := make([]string, 0, max+1)
	for i, s := range list {
		if i == max {
			out = append(out, "…")
			break
		}
		out = append(out, truncate(s))
	}
	return out
}
