package agentclient

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/agentid/agentid/pkg/claims"
	"github.com/agentid/agentid/pkg/delegation"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"
)

// DefaultMaxCachedTokens bounds the token cache when
// TokensConfig.MaxCachedTokens is zero: one agent rarely holds more than a
// few delegations times a few services.
const DefaultMaxCachedTokens = 1024

// maxAudienceLength bounds an audience: SPIRE takes any string, but a
// token's audience is a SPIFFE ID or URL, and the sidecar passes agent input
// here.
const maxAudienceLength = 2048

// CheckAudience returns an error wrapping ErrInvalidRequest, its text
// "agentclient: invalid request: audience: <reason>", when aud cannot be
// the audience of a delegated token: empty or longer than 2048 bytes, not
// UTF-8, with a space or control character, a delegation marker (the
// delegation is named by its id, never by an audience: SPIRE would be asked
// for a token with two markers, which the composer refuses, and a caller
// would see that refusal as SPIRE failing), or, holding a ':', not an
// absolute URI (RFC 7519's StringOrURI). Token checks it, so an audience
// SPIRE would refuse, or sign into a token no service accepts, is the
// caller's error and never reaches the Workload API.
func CheckAudience(aud string) error {
	if reason := audienceProblem(aud); reason != "" {
		return fmt.Errorf("%w: audience: %s", ErrInvalidRequest, reason)
	}
	return nil
}

func audienceProblem(aud string) string {
	if aud == "" || len(aud) > maxAudienceLength {
		return fmt.Sprintf("must be 1..%d bytes", maxAudienceLength)
	}
	if !utf8.ValidString(aud) {
		return "is not valid UTF-8"
	}
	for i, r := range aud {
		if unicode.IsSpace(r) || unicode.IsControl(r) {
			return fmt.Sprintf("has a space or control character at byte %d", i)
		}
	}
	if strings.HasPrefix(aud, claims.MarkerPrefix) {
		return "is a delegation marker (" + claims.MarkerPrefix + "…); name the delegation by its id instead"
	}
	if strings.Contains(aud, ":") {
		if u, err := url.Parse(aud); err != nil || u.Scheme == "" {
			return "has a ':' but is not an absolute URI, like spiffe://example.org/svc/crm or https://crm.example.org"
		}
	}
	return ""
}

// expiryMargin is how long before its exp a cached token is no longer
// handed out, even as a fallback: the receiver needs time to check it.
const expiryMargin = 10 * time.Second

// fetchTimeout bounds one shared fetch, which no single caller's context
// cancels: the Workload API answers in milliseconds, or SPIRE is down.
const fetchTimeout = 30 * time.Second

// JWTSVIDFetcher fetches a JWT-SVID over the Workload API.
// *workloadapi.Client implements it.
type JWTSVIDFetcher interface {
	FetchJWTSVID(ctx context.Context, params jwtsvid.Params) (*jwtsvid.SVID, error)
}

// TokensConfig configures DelegatedTokens. Fetcher and ID are required.
type TokensConfig struct {
	// Fetcher talks to the Workload API (a *workloadapi.Client).
	Fetcher JWTSVIDFetcher
	// ID is the agent's own SPIFFE ID. It is sent as spiffe_id on every
	// fetch: without it SPIRE mints a token for every entry the workload
	// matches, and one failure fails them all.
	ID spiffeid.ID
	// Clock returns the current time. Default time.Now.
	Clock func() time.Time
	// MaxCachedTokens bounds the cache. Default DefaultMaxCachedTokens.
	MaxCachedTokens int
}

// Token is a delegated JWT-SVID.
type Token struct {
	// Value is the compact JWS, for "Authorization: Bearer".
	Value string
	// Audience is the audience it was issued for (the marker is not in it).
	Audience string
	// Delegation is the delegation it was issued under.
	Delegation delegation.ID
	// IssuedAt and ExpiresAt are the token's iat and exp.
	IssuedAt, ExpiresAt time.Time
}

// refreshAt is when a cached token should be replaced: at half its life,
// as the SPIRE agent does, so a receiver never gets one about to expire.
func (t Token) refreshAt() time.Time {
	return t.IssuedAt.Add(t.ExpiresAt.Sub(t.IssuedAt) / 2)
}

// DelegatedTokens hands out delegated JWT-SVIDs for (delegation, audience)
// pairs, fetching each over the Workload API with spiffe_id = the agent's ID
// and audience = [audience, claims.Marker(delegation)], and caching it until
// half its lifetime has passed. It is safe for concurrent use; concurrent
// requests for one pair share one fetch, which no single caller's
// cancellation ends (each caller stops waiting when its own context ends;
// the fetch itself is bounded by a fixed timeout). A token is handed out
// only if it carries the delegation asked for, for exactly the audience
// asked for.
//
// # Denied or unavailable
//
// SPIRE v1.13.3 answers every failure of the server-side signing with the
// same code, Unavailable, whether the SPIRE server could not be reached or
// agentid's composer refused the delegation: the code alone cannot tell them
// apart. The composer's message does reach the workload inside SPIRE's, so
// a refusal (unknown, revoked, expired, foreign delegation) is recognised by
// its text and returned as ErrDelegationDenied. Everything else is
// ErrUnavailable, whose doc names both possibilities: should a SPIRE version
// stop relaying the composer's text, denials degrade to ErrUnavailable (a
// retry that keeps failing), never the reverse.
//
// The SPIRE agent caches JWT-SVIDs too, and when renewal fails it returns
// its cached token until that expires. A delegation revoked after a token
// was cached therefore still yields that token for up to one TTL without
// any error here; verifiers catch it through the revocation watch.
//
// When a refresh fails with ErrUnavailable and the cached token is still
// good for more than a few seconds, Token returns the cached token (as the
// SPIRE agent does); a denial drops it at once.
type DelegatedTokens struct {
	fetcher JWTSVIDFetcher
	id      spiffeid.ID
	clock   func() time.Time
	max     int

	mu      sync.Mutex
	entries map[tokenKey]*tokenEntry
}

type tokenKey struct {
	id       delegation.ID
	audience string
}

type tokenEntry struct {
	token  Token
	ok     bool    // token holds a fetched token
	flight *flight // non-nil while a fetch is in flight
}

// flight is one fetch that concurrent callers for the same pair share.
type flight struct {
	done chan struct{} // closed when tok and err are set
	tok  Token
	err  error
}

// NewDelegatedTokens validates config and returns an empty cache.
func NewDelegatedTokens(config TokensConfig) (*DelegatedTokens, error) {
	switch {
	case config.Fetcher == nil:
		return nil, fmt.Errorf("agentclient: invalid config: fetcher is required")
	case config.ID.IsZero():
		return nil, fmt.Errorf("agentclient: invalid config: the agent's SPIFFE ID is required")
	case config.MaxCachedTokens < 0:
		return nil, fmt.Errorf("agentclient: invalid config: max cached tokens %d is negative", config.MaxCachedTokens)
	}
	if config.Clock == nil {
		config.Clock = time.Now
	}
	if config.MaxCachedTokens == 0 {
		config.MaxCachedTokens = DefaultMaxCachedTokens
	}
	return &DelegatedTokens{
		fetcher: config.Fetcher, id: config.ID, clock: config.Clock, max: config.MaxCachedTokens,
		entries: make(map[tokenKey]*tokenEntry),
	}, nil
}

// ID is the agent's SPIFFE ID, the sub of every token.
func (t *DelegatedTokens) ID() spiffeid.ID { return t.id }

// Token returns a JWT-SVID for audience issued under delegation id, from
// the cache while it is younger than half its lifetime. Errors wrap
// ErrInvalidRequest, ErrDelegationDenied, ErrUnavailable or ErrNoIdentity.
func (t *DelegatedTokens) Token(ctx context.Context, id delegation.ID, audience string) (Token, error) {
	if id.IsZero() {
		return Token{}, fmt.Errorf("%w: delegation id is required", ErrInvalidRequest)
	}
	if err := CheckAudience(audience); err != nil {
		return Token{}, err
	}
	key := tokenKey{id: id, audience: audience}
	t.mu.Lock()
	e := t.entries[key]
	now := t.clock()
	if e != nil && e.ok && now.Before(e.token.refreshAt()) {
		tok := e.token
		t.mu.Unlock()
		return tok, nil
	}
	if e != nil && e.flight != nil {
		f := e.flight
		t.mu.Unlock()
		select {
		case <-f.done:
			return f.tok, f.err
		case <-ctx.Done():
			return Token{}, fmt.Errorf("%w: %w", ErrUnavailable, ctx.Err())
		}
	}
	if e == nil {
		t.evictLocked(now)
		e = &tokenEntry{}
		t.entries[key] = e
	}
	f := &flight{done: make(chan struct{})}
	e.flight = f
	t.mu.Unlock()

	// The fetch is shared, so it must not die with this caller's request:
	// it keeps ctx's values but not its cancellation, and is bounded by
	// fetchTimeout instead. Every caller, this one included, waits for it
	// only as long as its own ctx allows.
	go t.run(context.WithoutCancel(ctx), key, e, f)
	select {
	case <-f.done:
		return f.tok, f.err
	case <-ctx.Done():
		return Token{}, fmt.Errorf("%w: %w", ErrUnavailable, ctx.Err())
	}
}

// run performs the fetch of flight f for entry e and publishes its result.
// The token is cached only if e is still the cache's entry for key: Forget
// removes in-flight entries too, so a fetch that raced a revocation hands
// its result to the callers already waiting but never caches it.
func (t *DelegatedTokens) run(ctx context.Context, key tokenKey, e *tokenEntry, f *flight) {
	ctx, cancel := context.WithTimeout(ctx, fetchTimeout)
	defer cancel()
	tok, err := t.fetch(ctx, key)

	t.mu.Lock()
	defer t.mu.Unlock()
	defer close(f.done)
	e.flight = nil
	current := t.entries[key] == e
	now := t.clock()
	switch {
	case err == nil:
		if current {
			e.token, e.ok = tok, true
		}
		f.tok = tok
	case e.ok && errors.Is(err, ErrUnavailable) && now.Add(expiryMargin).Before(e.token.ExpiresAt):
		f.tok = e.token // the SPIRE agent's own fallback, one level up
	default:
		if current {
			delete(t.entries, key)
		}
		f.err = err
	}
}

func (t *DelegatedTokens) fetch(ctx context.Context, key tokenKey) (Token, error) {
	svid, err := t.fetcher.FetchJWTSVID(ctx, jwtsvid.Params{
		Subject:        t.id,
		Audience:       key.audience,
		ExtraAudiences: []string{claims.Marker(key.id)},
	})
	if err != nil {
		return Token{}, fmt.Errorf("agentclient: fetch token under %s: %w", key.id, classify(err))
	}
	// The composer strips the marker; a token that still carries it was not
	// composed (no composer, or one that ignored the marker): sending it
	// would present a plain token as if it were delegated.
	for _, a := range svid.Audience {
		if a == claims.Marker(key.id) {
			return Token{}, fmt.Errorf("agentclient: fetch token under %s: %w: token still carries the marker audience (is agentid's composer loaded?)", key.id, ErrUnavailable)
		}
	}
	if svid.ID != t.id {
		return Token{}, fmt.Errorf("agentclient: fetch token under %s: %w: token subject %s is not %s", key.id, ErrUnavailable, svid.ID, t.id)
	}
	// Nor is the marker's absence proof of composition: the token must
	// carry the delegation asked for, for exactly the audience asked for.
	c, err := claims.Decode(svid.Claims, t.id)
	if err != nil {
		return Token{}, fmt.Errorf("agentclient: fetch token under %s: %w: token carries no valid delegation claims: %w", key.id, ErrUnavailable, err)
	}
	if c.ID != key.id {
		return Token{}, fmt.Errorf("agentclient: fetch token under %s: %w: token carries delegation %s", key.id, ErrUnavailable, c.ID)
	}
	if len(svid.Audience) != 1 || svid.Audience[0] != key.audience {
		return Token{}, fmt.Errorf("agentclient: fetch token under %s: %w: token audience is %q, want [%q]", key.id, ErrUnavailable, svid.Audience, key.audience)
	}
	iat := t.clock()
	if v, ok := svid.Claims["iat"].(float64); ok {
		iat = time.Unix(int64(v), 0)
	}
	return Token{Value: svid.Marshal(), Audience: key.audience, Delegation: key.id, IssuedAt: iat, ExpiresAt: svid.Expiry}, nil
}

// Forget drops every cached token issued under id, e.g. after the agent
// revoked it: the next Token call asks SPIRE again. A fetch under id still
// in flight is detached too: its callers get its result, but it is never
// cached, so a token fetched just before the revocation does not outlive
// Forget.
func (t *DelegatedTokens) Forget(id delegation.ID) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for k := range t.entries {
		if k.id == id {
			delete(t.entries, k)
		}
	}
}

// Len is the number of cached tokens.
func (t *DelegatedTokens) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.entries)
}

// evictLocked makes room for one entry: first every expired token, then,
// if still full, the token that expires soonest.
func (t *DelegatedTokens) evictLocked(now time.Time) {
	if len(t.entries) < t.max {
		return
	}
	var soonest tokenKey
	var soonestExp time.Time
	for k, e := range t.entries {
		if e.flight != nil {
			continue
		}
		if !now.Before(e.token.ExpiresAt) {
			delete(t.entries, k)
			continue
		}
		if soonestExp.IsZero() || e.token.ExpiresAt.Before(soonestExp) {
			soonest, soonestExp = k, e.token.ExpiresAt
		}
	}
	if len(t.entries) >= t.max && !soonestExp.IsZero() {
		delete(t.entries, soonest)
	}
}
