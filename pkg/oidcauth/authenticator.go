package oidcauth

import (
	"bytes"
	"context"
	"errors"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/agentid/agentid/pkg/delegation"
)

// Identity is what a verified user token says about the user.
type Identity struct {
	// User is the issuer, the subject and, only when the token marks it
	// verified, the email.
	User delegation.User
	// Groups are the values of the issuer's groups claim, in token order;
	// nil when the claim is absent or empty.
	Groups []string
	// EmailVerified reports whether the token marked its email verified; it is
	// true exactly when User.Email() is not "".
	EmailVerified bool
	// IssuedAt and Expiry are the token's iat and exp. A delegation made from
	// the token may outlive it: the user's authority is checked once, at
	// delegation time, and the delegation carries its own expiry.
	IssuedAt, Expiry time.Time
	// Audience is the token's aud, one of which the issuer accepts.
	Audience []string
	// Nonce is the token's nonce claim ("" when absent). Authenticate does
	// not check it: only the relying party that started the sign-in knows
	// the value to expect (the user page compares it with the one it sent).
	Nonce string
}

// Authenticator verifies user tokens from allow-listed OpenID providers. It is
// safe for concurrent use; make one per process, so the key sets are cached
// and refreshes rate limited across all requests.
type Authenticator struct {
	cfg     *resolved
	issuers map[string]*issuerKeys
}

// New validates the configuration and returns an Authenticator. It does no
// network I/O: discovery and the key set of an issuer are fetched on its first
// token (or by Prefetch), so a server starts while its IdP is still coming up
// (Kubernetes does not order pods) and fails closed per request, with
// ReasonIssuerUnavailable, until the IdP answers.
func New(config Config) (*Authenticator, error) {
	cfg, err := config.resolve()
	if err != nil {
		return nil, err
	}
	client := safeClient(cfg.HTTPClient)
	a := &Authenticator{cfg: cfg, issuers: make(map[string]*issuerKeys, len(cfg.issuers))}
	for url, s := range cfg.issuers {
		a.issuers[url] = newIssuerKeys(s, client, cfg)
	}
	return a, nil
}

// Prefetch fetches discovery and key sets of every issuer that has none yet,
// and returns their errors joined. A server may call it at start-up to warm
// the cache and log an unreachable IdP early; an error is not fatal, as
// Authenticate retries on its own.
func (a *Authenticator) Prefetch(ctx context.Context) error {
	var errs []error
	for url, k := range a.issuers {
		if k.current.Load() != nil {
			continue
		}
		r := k.startRefresh()
		if r == nil {
			if err := k.lastError(); err != nil {
				errs = append(errs, &TokenError{Reason: ReasonIssuerUnavailable, Issuer: url, Err: err})
			}
			continue
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-r.done:
		}
		if r.err != nil {
			errs = append(errs, &TokenError{Reason: ReasonIssuerUnavailable, Issuer: url, Err: r.err})
		}
	}
	return errors.Join(errs...)
}

// Authenticate verifies a raw user token (the compact JWS, without "Bearer ")
// and returns the identity it asserts. Every error is a *TokenError wrapping
// ErrInvalidToken; see Reason for the checks, in order.
//
// Only the unverified "iss" is read before the signature is checked, to pick
// the issuer from the allow-list; an issuer not on it is never fetched.
func (a *Authenticator) Authenticate(ctx context.Context, rawToken string) (Identity, error) {
	id, terr := a.authenticate(ctx, rawToken)
	if terr != nil {
		return Identity{}, terr
	}
	return id, nil
}

func (a *Authenticator) authenticate(ctx context.Context, raw string) (Identity, *TokenError) {
	if len(raw) > a.cfg.MaxTokenSize {
		return Identity{}, tokenErr(ReasonTooLarge, "", "token exceeds %d bytes", a.cfg.MaxTokenSize)
	}
	t, reason, err := parseUnverified(raw)
	if err != nil {
		return Identity{}, &TokenError{Reason: reason, Err: err}
	}
	k, ok := a.issuers[t.iss]
	if !ok {
		return Identity{}, &TokenError{Reason: ReasonUnknownIssuer, Err: errIssuerNotListed}
	}
	s := k.settings

	keys, terr := k.keysFor(ctx, t.kid, t.alg)
	if terr != nil {
		return Identity{}, terr
	}
	// Only the algorithm already checked is allowed, so go-jose and this
	// package cannot disagree about which one the token uses.
	jws, err := jose.ParseSignedCompact(raw, []jose.SignatureAlgorithm{jose.SignatureAlgorithm(t.alg)})
	if err != nil || len(jws.Signatures) != 1 || jws.Signatures[0].Header.KeyID != t.kid {
		return Identity{}, tokenErr(ReasonMalformed, s.url, "token rejected by the JWS parser")
	}
	verified := false
	for _, key := range keys {
		payload, err := jws.Verify(key.key)
		if err == nil {
			if !bytes.Equal(payload, t.payload) {
				return Identity{}, tokenErr(ReasonMalformed, s.url, "verified payload differs from parsed payload")
			}
			verified = true
			break
		}
	}
	if !verified {
		return Identity{}, tokenErr(ReasonBadSignature, s.url, "signature does not verify")
	}

	c, err := decodeClaims(t.claims, s.groupsClaim)
	if err != nil {
		return Identity{}, &TokenError{Reason: ReasonBadClaims, Issuer: s.url, Err: err}
	}
	if c.iss != s.url {
		return Identity{}, tokenErr(ReasonBadClaims, s.url, "iss differs from the selected issuer")
	}
	now := a.cfg.Clock()
	skew := a.cfg.ClockSkew
	switch {
	case !now.Before(c.exp.Add(skew)):
		return Identity{}, tokenErr(ReasonExpired, s.url, "token expired")
	case !c.nbf.IsZero() && now.Add(skew).Before(c.nbf):
		return Identity{}, tokenErr(ReasonNotYetValid, s.url, "nbf is in the future")
	case now.Add(skew).Before(c.iat):
		return Identity{}, tokenErr(ReasonNotYetValid, s.url, "iat is in the future")
	}
	if !accepts(s.audiences, c.aud) {
		return Identity{}, tokenErr(ReasonWrongAudience, s.url, "no accepted audience")
	}

	verifiedEmail := c.emailVerified && c.email != ""
	if s.requireVerifiedEmail && !verifiedEmail {
		return Identity{}, tokenErr(ReasonEmailNotVerified, s.url, "email missing or not verified")
	}
	email := ""
	if verifiedEmail {
		email = c.email
	}
	user, err := delegation.NewUser(s.url, c.sub, email)
	if err != nil {
		// delegation's errors name the field and a length, never the value.
		return Identity{}, &TokenError{Reason: ReasonBadClaims, Issuer: s.url, Err: err}
	}
	return Identity{
		User:          user,
		Groups:        c.groups,
		EmailVerified: verifiedEmail,
		IssuedAt:      c.iat,
		Expiry:        c.exp,
		Audience:      c.aud,
		Nonce:         c.nonce,
	}, nil
}

func accepts(accepted map[string]struct{}, aud []string) bool {
	for _, a := range aud {
		if _, ok := accepted[a]; ok {
			return true
		}
	}
	return false
}
