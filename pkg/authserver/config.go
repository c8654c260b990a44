package authserver

import (
	"context"
	"crypto/ecdsa"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/agentid/agentid/pkg/agent"
	"github.com/agentid/agentid/pkg/audit"
	"github.com/agentid/agentid/pkg/delegation"
	"github.com/agentid/agentid/pkg/store"
)

// Defaults and bounds.
const (
	// DefaultMaxTokenTTL is the longest access token lifetime when Config
	// sets none: five minutes, SPIRE's default JWT-SVID TTL. Short tokens are
	// what lets a resource server skip introspection (see doc.go).
	DefaultMaxTokenTTL = 5 * time.Minute
	// MaxRequestSize bounds a token or introspection request body. A
	// delegated JWT-SVID is under 2 KiB; the form around it is small.
	MaxRequestSize = 16 << 10
	// MaxAssertionSize is the longest assertion looked at (pkg/verify's
	// bound on a JWT-SVID).
	MaxAssertionSize = 8 << 10
)

// Store is what the authorization server needs of agentid-server's store:
// the delegation behind an assertion or a token (read on every grant and
// introspection, so a revocation shows at once), the sub-delegations token
// exchange records (with their audit event, refused with
// store.ErrParentInactive under a revoked parent), and the audit log.
type Store interface {
	GetDelegation(ctx context.Context, id delegation.ID) (*delegation.Delegation, error)
	CreateDelegation(ctx context.Context, d *delegation.Delegation, ev audit.Event) (store.Revision, error)
	AppendEvents(ctx context.Context, evs ...audit.Event) error
}

// Keys signs access tokens and publishes the keys that verify them
// (pkg/authserver/keyring).
type Keys interface {
	// Sign returns a compact JWS of payload (ES256, typ at+jwt, kid).
	Sign(payload []byte) (token, kid string, err error)
	// JWKS is the JSON Web Key Set to publish.
	JWKS() []byte
	// MaxAge is how long resource servers may cache the JWKS.
	MaxAge() time.Duration
	// PublicKey returns a published key by id.
	PublicKey(kid string) (*ecdsa.PublicKey, bool)
}

// Resource is a protected resource (an MCP server, an API) agents may get
// access tokens for.
type Resource struct {
	// URI is the resource's canonical URI (RFC 8707 §2, the MCP spec's
	// "canonical server URI"): the aud of its tokens, compared exactly.
	URI string
	// Scopes are the scopes a token for this resource may carry; a grant is
	// narrowed to them.
	Scopes delegation.ScopeSet
	// TokenTTL is the lifetime of its tokens, at most Config.MaxTokenTTL;
	// zero means Config.MaxTokenTTL.
	TokenTTL time.Duration
	// IntrospectionSecret, when set, lets the resource server call the
	// introspection endpoint with HTTP Basic authentication (client id = URI,
	// RFC 7662 §2.1). A resource server without it relies on the token's
	// short lifetime, or introspects over mTLS with an X509-SVID.
	IntrospectionSecret string
}

// Config configures a Server. Issuer, Resources, Keys, Store, Bundles and
// TrustDomains are required.
type Config struct {
	// Issuer is the authorization server's issuer URL (RFC 8414): https,
	// no query or fragment. Metadata is served at
	// Issuer + "/.well-known/oauth-authorization-server" (path-aware
	// issuers get the RFC 8414 §3.1 insertion), endpoints below Issuer.
	// Agents fetch their assertions with this audience.
	Issuer string
	// Resources are the registered resources.
	Resources []Resource
	// Keys signs the access tokens.
	Keys Keys
	// Store holds delegations and the audit log.
	Store Store
	// Bundles are the trust domains' JWT bundles assertions are verified
	// with (agentid-server's SPIRE bundle source).
	Bundles jwtbundle.Source
	// X509Bundles verifies the client certificates agents present (RFC 8705
	// tls_client_auth with an X509-SVID). Without it a request with a client
	// certificate is refused: the handler never trusts a certificate the
	// listener may not have checked.
	X509Bundles x509bundle.Source
	// TrustDomains are the trust domains whose agents may get tokens.
	TrustDomains []spiffeid.TrustDomain
	// Agents are the declared agents: token exchange to another agent (a
	// sub-delegation) follows their sub-agents and scope ceilings, as
	// CreateSubDelegation does. Nil: such exchanges are refused.
	Agents *agent.Set
	// MaxTokenTTL caps every access token's lifetime. Default
	// DefaultMaxTokenTTL; at most one hour.
	MaxTokenTTL time.Duration
	// Clock returns the current time. Default time.Now.
	Clock func() time.Time
	// Log receives one line per refusal (its reason, never a token). Default:
	// discarded.
	Log logrus.FieldLogger
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

func (c Config) withDefaults() (Config, error) {
	var errs []string
	if err := checkIssuer(c.Issuer); err != nil {
		errs = append(errs, err.Error())
	}
	if c.Keys == nil {
		errs = append(errs, "keys are required")
	}
	if c.Store == nil {
		errs = append(errs, "store is required")
	}
	if c.Bundles == nil {
		errs = append(errs, "bundle source is required")
	}
	if len(c.TrustDomains) == 0 {
		errs = append(errs, "at least one trust domain is required")
	}
	if c.MaxTokenTTL == 0 {
		c.MaxTokenTTL = DefaultMaxTokenTTL
	}
	if c.MaxTokenTTL < time.Second || c.MaxTokenTTL > time.Hour {
		errs = append(errs, fmt.Sprintf("max token ttl %s outside 1s..1h", c.MaxTokenTTL))
	}
	if len(c.Resources) == 0 {
		errs = append(errs, "at least one resource is required")
	}
	seen := map[string]bool{}
	for i, r := range c.Resources {
		if err := CheckResourceURI(r.URI); err != nil {
			errs = append(errs, fmt.Sprintf("resource %d: %v", i, err))
		}
		if seen[r.URI] {
			errs = append(errs, fmt.Sprintf("resource %d: %q declared twice", i, r.URI))
		}
		seen[r.URI] = true
		if r.Scopes.IsEmpty() {
			errs = append(errs, fmt.Sprintf("resource %q: no scopes", r.URI))
		}
		if r.TokenTTL < 0 || r.TokenTTL > c.MaxTokenTTL {
			errs = append(errs, fmt.Sprintf("resource %q: token ttl %s outside 0..%s", r.URI, r.TokenTTL, c.MaxTokenTTL))
		}
	}
	if len(errs) > 0 {
		return Config{}, fmt.Errorf("authserver: invalid config: %s", strings.Join(errs, "; "))
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
	if c.Log == nil {
		l := logrus.New()
		l.Out = discard{}
		c.Log = l
	}
	return c, nil
}

func checkIssuer(s string) error {
	u, err := url.Parse(s)
	switch {
	case s == "":
		return errors.New("issuer is required")
	case err != nil || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || strings.ContainsAny(s, "?#"):
		return errors.New("issuer must be an absolute URL without query or fragment")
	case u.Scheme != "https" && !(u.Scheme == "http" && isLoopback(u.Hostname())):
		return errors.New("issuer must be https (http only on loopback)")
	}
	return nil
}

// CheckResourceURI reports whether s can name a resource: an absolute URI
// without a fragment (RFC 8707 §2), https (http only on loopback), at most
// 2048 bytes.
func CheckResourceURI(s string) error {
	u, err := url.Parse(s)
	switch {
	case s == "" || len(s) > 2048:
		return errors.New("resource URI must be 1..2048 bytes")
	case err != nil || !u.IsAbs() || u.Host == "":
		return errors.New("resource URI must be absolute")
	case u.Fragment != "" || strings.Contains(s, "#"):
		return errors.New("resource URI must not have a fragment")
	case u.Scheme != "https" && !(u.Scheme == "http" && isLoopback(u.Hostname())):
		return errors.New("resource URI must be https (http only on loopback)")
	}
	return nil
}

func isLoopback(h string) bool { return h == "localhost" || h == "127.0.0.1" || h == "::1" }
