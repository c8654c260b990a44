package oidcauth

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/agentid/agentid/pkg/delegation"
)

// Defaults filled in by New for zero Config fields.
const (
	// DefaultMaxTokenSize bounds a token in bytes. ID tokens are usually under
	// 2 KiB; 16 KiB leaves room for large group lists and still refuses a
	// megabyte of base64 before it is decoded.
	DefaultMaxTokenSize = 16 << 10
	// DefaultClockSkew is how far exp, nbf and iat may be off.
	DefaultClockSkew = time.Minute
	// DefaultFetchTimeout bounds one discovery or key set request.
	DefaultFetchTimeout = 10 * time.Second
	// DefaultMaxResponseSize bounds a discovery document or key set in bytes.
	DefaultMaxResponseSize = 1 << 20
	// DefaultMinRefreshInterval is the least time between two fetches for one
	// issuer, whatever triggered them (unknown kid, failed fetch, stale keys).
	// Tokens with random kids therefore cost the identity provider at most one
	// key set request per interval, and an outage is retried that often.
	DefaultMinRefreshInterval = 10 * time.Second
	// DefaultKeysMaxAge is the age after which a key set is refreshed in the
	// background even when every kid is known, so removed keys go away.
	DefaultKeysMaxAge = time.Hour
	// DefaultGroupsClaim is the claim that holds the user's groups.
	DefaultGroupsClaim = "groups"
)

// Bounds on claim values, beyond the token size.
const (
	// MaxGroups is the most groups a token may carry.
	MaxGroups = 256
	// MaxGroupLength bounds one group name in bytes.
	MaxGroupLength = 256
	// MaxAudiences is the most "aud" values a token may carry.
	MaxAudiences = 32
	// MaxKeys is the most usable keys kept from one key set; the rest are
	// ignored so that a token without kid costs a bounded number of
	// signature checks.
	MaxKeys = 64
)

// Config configures an Authenticator. Only Issuers is required.
type Config struct {
	// Issuers is the allow-list. A token whose "iss" is not exactly one of
	// these URLs is refused without any network request.
	Issuers []IssuerConfig

	// HTTPClient fetches discovery documents and key sets, e.g. with a custom
	// CA pool for an internal IdP. It is copied, never modified: the copy
	// refuses redirects to another host or scheme (then runs the client's own
	// CheckRedirect). Default: a client on http.DefaultTransport.
	HTTPClient *http.Client

	// Clock returns the current time for token validity and refresh rate
	// limiting. Default: time.Now.
	Clock func() time.Time

	// MaxTokenSize is the longest token accepted, in bytes, checked before
	// any parsing. Default DefaultMaxTokenSize.
	MaxTokenSize int

	// ClockSkew is the tolerance on exp, nbf and iat. Default
	// DefaultClockSkew; at most 5 minutes.
	ClockSkew time.Duration

	// FetchTimeout bounds each discovery or key set request. Default
	// DefaultFetchTimeout.
	FetchTimeout time.Duration

	// MaxResponseSize bounds a discovery document or key set in bytes.
	// Default DefaultMaxResponseSize.
	MaxResponseSize int64

	// MinRefreshInterval is the least time between two fetches for one
	// issuer. It rate limits refreshes triggered by unknown kids, so an
	// attacker spraying random kids cannot hammer the IdP, and retries while
	// the IdP is down. Default DefaultMinRefreshInterval.
	MinRefreshInterval time.Duration

	// KeysMaxAge is the age after which a key set is refreshed in the
	// background (the request goes on with the cached keys). If that refresh
	// fails the cached keys stay in use. Default DefaultKeysMaxAge.
	KeysMaxAge time.Duration
}

// IssuerConfig is one allow-listed OpenID provider.
type IssuerConfig struct {
	// URL is the issuer identifier, compared byte for byte with the token's
	// "iss" and with the "issuer" of the discovery document, which is fetched
	// from URL + "/.well-known/openid-configuration". https, or http for a
	// loopback host (tests).
	URL string

	// Audiences are the "aud" values accepted from this issuer (for an ID
	// token, the OAuth client IDs of the front ends). At least one; a token
	// must carry one of them, so a token minted for another application of
	// the same IdP is refused.
	Audiences []string

	// GroupsClaim names the claim that holds the user's groups, a list of
	// strings or a single string. Default DefaultGroupsClaim. The name is
	// taken literally (Auth0's "https://example.com/groups" contains dots).
	GroupsClaim string

	// RequireVerifiedEmail refuses tokens without an "email" and
	// "email_verified": true. Whatever its value, an email the token does not
	// mark as verified is never put in the returned User, so a principal's
	// email in agentid is always a verified one.
	RequireVerifiedEmail bool

	// JWKSURL, when set, is used instead of the discovery document's
	// "jwks_uri" and discovery is skipped (for providers without discovery).
	JWKSURL string
}

const maxClockSkew = 5 * time.Minute

// resolved is a validated Config with its defaults filled in.
type resolved struct {
	Config
	issuers map[string]*issuerSettings
}

// issuerSettings is a validated IssuerConfig.
type issuerSettings struct {
	url                  string
	discoveryURL         string
	jwksURL              string // from config, or "" to discover
	audiences            map[string]struct{}
	groupsClaim          string
	requireVerifiedEmail bool
}

func (c Config) resolve() (*resolved, error) {
	fail := func(format string, args ...any) (*resolved, error) {
		return nil, fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, args...))
	}
	if len(c.Issuers) == 0 {
		return fail("at least one issuer is required")
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{}
	}
	defaults := []struct {
		name  string
		value *time.Duration
		def   time.Duration
	}{
		{"clock skew", &c.ClockSkew, DefaultClockSkew},
		{"fetch timeout", &c.FetchTimeout, DefaultFetchTimeout},
		{"minimum refresh interval", &c.MinRefreshInterval, DefaultMinRefreshInterval},
		{"keys max age", &c.KeysMaxAge, DefaultKeysMaxAge},
	}
	for _, d := range defaults {
		switch {
		case *d.value < 0:
			return fail("%s is negative", d.name)
		case *d.value == 0:
			*d.value = d.def
		}
	}
	if c.ClockSkew > maxClockSkew {
		return fail("clock skew %v exceeds %v", c.ClockSkew, maxClockSkew)
	}
	if c.KeysMaxAge < c.MinRefreshInterval {
		return fail("keys max age %v is below the minimum refresh interval %v", c.KeysMaxAge, c.MinRefreshInterval)
	}
	switch {
	case c.MaxTokenSize < 0:
		return fail("max token size is negative")
	case c.MaxTokenSize == 0:
		c.MaxTokenSize = DefaultMaxTokenSize
	}
	switch {
	case c.MaxResponseSize < 0:
		return fail("max response size is negative")
	case c.MaxResponseSize == 0:
		c.MaxResponseSize = DefaultMaxResponseSize
	}

	r := &resolved{Config: c, issuers: make(map[string]*issuerSettings, len(c.Issuers))}
	for i, ic := range c.Issuers {
		s, err := ic.resolve()
		if err != nil {
			return fail("issuer %d: %v", i, err)
		}
		if _, dup := r.issuers[s.url]; dup {
			return fail("issuer %d: duplicate issuer %q", i, s.url)
		}
		r.issuers[s.url] = s
	}
	return r, nil
}

func (ic IssuerConfig) resolve() (*issuerSettings, error) {
	if err := checkFetchURL(ic.URL, true); err != nil {
		return nil, fmt.Errorf("url: %w", err)
	}
	u, _ := url.Parse(ic.URL)
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, fmt.Errorf("url %q has a query, fragment or user info", ic.URL)
	}
	// The issuer ends up in every delegation this user makes: refuse at
	// start-up one that delegation.NewUser would refuse per request.
	if _, err := delegation.NewUser(ic.URL, "subject", ""); err != nil {
		return nil, fmt.Errorf("url: %w", err)
	}
	s := &issuerSettings{
		url:                  ic.URL,
		discoveryURL:         strings.TrimSuffix(ic.URL, "/") + "/.well-known/openid-configuration",
		jwksURL:              ic.JWKSURL,
		audiences:            make(map[string]struct{}, len(ic.Audiences)),
		groupsClaim:          ic.GroupsClaim,
		requireVerifiedEmail: ic.RequireVerifiedEmail,
	}
	if ic.JWKSURL != "" {
		if err := checkFetchURL(ic.JWKSURL, true); err != nil {
			return nil, fmt.Errorf("jwks url: %w", err)
		}
	}
	if len(ic.Audiences) == 0 {
		return nil, fmt.Errorf("issuer %q has no audiences", ic.URL)
	}
	for _, a := range ic.Audiences {
		if a == "" {
			return nil, fmt.Errorf("issuer %q has an empty audience", ic.URL)
		}
		s.audiences[a] = struct{}{}
	}
	if s.groupsClaim == "" {
		s.groupsClaim = DefaultGroupsClaim
	}
	return s, nil
}

// checkFetchURL accepts an absolute https URL, or, when allowHTTP, http for a
// loopback host.
func checkFetchURL(raw string, allowHTTP bool) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%q is not a URL", raw)
	}
	switch {
	case u.Host == "":
		return fmt.Errorf("%q is not an absolute URL", raw)
	case u.Scheme == "https":
		return nil
	case u.Scheme == "http" && allowHTTP && isLoopback(u.Hostname()):
		return nil
	case allowHTTP:
		return fmt.Errorf("%q is not https (http only for loopback hosts)", raw)
	}
	return fmt.Errorf("%q is not https", raw)
}

func isLoopback(host string) bool {
	return host == "localhost" || host == "127.0.0.1" || host == "::1"
}
