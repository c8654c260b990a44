package verify

import (
	"fmt"
	"strings"
	"time"

	"github.com/agentid/agentid/pkg/delegation"
	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// MaxTokenSize is the longest token Verify looks at, in bytes. Longer tokens
// are refused before any decoding: a JWT-SVID with agentid's claims is under
// 2 KiB, and decoding is the one cost an unauthenticated caller can inflate
// (go-spiffe decodes a forged 1 MiB payload in 7.5 ms and 5 MB).
const MaxTokenSize = 8 << 10

// Defaults filled in by New for zero Config fields.
const (
	// DefaultClockSkew is the tolerance on exp, nbf and iat, the same one
	// minute go-spiffe's jwtsvid.ParseAndValidate allows.
	DefaultClockSkew = time.Minute
	// DefaultCacheSize is the number of verified tokens remembered. With
	// SPIRE's default 5-minute JWT-SVID TTL it covers 10000 distinct tokens
	// per TTL, far more than the agents one service talks to.
	DefaultCacheSize = 10000
	// maxClockSkew bounds ClockSkew: more would keep expired and revoked
	// tokens alive well past the revocation checker's retention.
	maxClockSkew = 5 * time.Minute
)

// RevocationChecker tells whether a delegation has been revoked. Verify asks
// it about the token's delegation and the root of its chain on every call,
// cached tokens included, so it must answer from memory. An error means it
// cannot tell (e.g. its source is unreachable); Verify then refuses the token
// with ErrRevocationUnknown. pkg/verify/revocation implements it over
// agentid-server's WatchDelegations stream.
type RevocationChecker interface {
	Revoked(id delegation.ID) (bool, error)
}

// Config configures a Verifier. Bundles, Audiences, TrustDomains and
// Revocation (or the explicit InsecureNoRevocation) are required.
type Config struct {
	// Bundles gives the JWT authorities of each trust domain, e.g. a
	// workloadapi.JWTSource or a jwtbundle.Set. Consulted on every call, so a
	// key dropped from the bundle stops cached tokens signed with it too.
	Bundles jwtbundle.Source

	// Audiences are the audiences this service accepts; a token must name at
	// least one of them. Use the service's own SPIFFE ID or URL: a token
	// issued for another service must not be replayable here.
	Audiences []string

	// TrustDomains are the trust domains whose agents may call. A token is
	// verified only with keys from these trust domains' bundles, and its
	// subject must belong to the trust domain whose key signed it.
	TrustDomains []spiffeid.TrustDomain

	// Revocation is consulted for every token with delegation claims, e.g.
	// a pkg/verify/revocation Watcher. Required unless InsecureNoRevocation
	// is set: a verifier that forgot it would accept the tokens of revoked
	// delegations without a word.
	Revocation RevocationChecker

	// InsecureNoRevocation runs the Verifier without a revocation checker
	// (Revocation must then be nil): the tokens of a revoked delegation are
	// accepted until they expire, up to SPIRE's JWT-SVID TTL. For tests and
	// for services that deliberately accept that window; agentid-extauthz
	// sets it for "revocation: {disabled: true}".
	InsecureNoRevocation bool

	// AllowPlainTokens accepts JWT-SVIDs without delegation claims, yielding
	// a Principal with only Agent set. Off by default: a service that expects
	// delegated calls should not silently accept an agent acting for nobody.
	AllowPlainTokens bool

	// Clock returns the current time. Default: time.Now.
	Clock func() time.Time

	// ClockSkew is the tolerance on the token's exp, nbf and iat, for clocks
	// that disagree with SPIRE's. The delegation's own expires_at is checked
	// without it. Default DefaultClockSkew; at most 5 minutes.
	ClockSkew time.Duration

	// CacheSize bounds the verified-token cache, in tokens. Default
	// DefaultCacheSize; negative disables the cache.
	CacheSize int
}

func (c Config) withDefaults() (Config, error) {
	var errs []string
	if c.Bundles == nil {
		errs = append(errs, "bundle source is required")
	}
	if len(c.Audiences) == 0 {
		errs = append(errs, "at least one audience is required")
	}
	for i, a := range c.Audiences {
		if a == "" {
			errs = append(errs, fmt.Sprintf("audience %d is empty", i))
		}
	}
	if len(c.TrustDomains) == 0 {
		errs = append(errs, "at least one trust domain is required")
	}
	for i, td := range c.TrustDomains {
		if td.IsZero() {
			errs = append(errs, fmt.Sprintf("trust domain %d is empty", i))
		}
	}
	switch {
	case c.Revocation == nil && !c.InsecureNoRevocation:
		errs = append(errs, "a revocation checker is required (InsecureNoRevocation opts out, accepting revoked delegations' tokens until they expire)")
	case c.Revocation != nil && c.InsecureNoRevocation:
		errs = append(errs, "InsecureNoRevocation is set with a revocation checker")
	}
	if c.ClockSkew < 0 || c.ClockSkew > maxClockSkew {
		errs = append(errs, fmt.Sprintf("clock skew %v outside 0..%v", c.ClockSkew, maxClockSkew))
	}
	if len(errs) > 0 {
		return Config{}, fmt.Errorf("verify: invalid config: %s", strings.Join(errs, "; "))
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
	if c.ClockSkew == 0 {
		c.ClockSkew = DefaultClockSkew
	}
	if c.CacheSize == 0 {
		c.CacheSize = DefaultCacheSize
	}
	c.Audiences = append([]string(nil), c.Audiences...)
	c.TrustDomains = append([]spiffeid.TrustDomain(nil), c.TrustDomains...)
	return c, nil
}
