package config

import (
	"fmt"
	"net"
	"time"

	"github.com/agentid/agentid/pkg/authserver"
	"github.com/agentid/agentid/pkg/delegation"
)

// OAuthFile is the `oauth` section: agentid-server as an OAuth 2.0
// authorization server (pkg/authserver) on an HTTPS listener of its own.
// Absent: no such listener.
type OAuthFile struct {
	// Listen is the address of the HTTPS listener, e.g. "0.0.0.0:9443".
	// Required.
	Listen string `yaml:"listen"`
	// Issuer is the authorization server's issuer URL, as resource servers
	// and agents reach it, e.g. "https://agentid.example.com". Agents fetch
	// their assertions with this audience. Required.
	Issuer string `yaml:"issuer"`
	// TLS is the listener's certificate, from files (what cert-manager or an
	// ingress provides; re-read when they change). Resource servers fetch
	// metadata and keys here and are not SPIFFE-aware, so this is an
	// ordinary web PKI certificate, not an SVID. Client certificates are
	// requested, not required: agents present their X509-SVID to get bound
	// tokens (RFC 8705).
	TLS struct {
		CertFile string `yaml:"cert_file"`
		KeyFile  string `yaml:"key_file"`
	} `yaml:"tls"`
	// DangerouslyServePlaintext serves plain HTTP on a non-loopback address,
	// for a TLS-terminating proxy in front. Tokens then cross the network
	// between proxy and server in the clear, and agents cannot present their
	// certificates (no bound tokens). Without it, plain HTTP is refused
	// except on loopback.
	DangerouslyServePlaintext bool `yaml:"dangerously_serve_plaintext"`
	// MaxTokenTTL caps every access token. Default 5m, at most 1h.
	MaxTokenTTL time.Duration `yaml:"max_token_ttl"`
	// SigningKeys tunes the rotation of the ES256 signing keys (kept in the
	// store). Defaults: rotation_period 24h, publish_ahead 1h.
	SigningKeys struct {
		RotationPeriod time.Duration `yaml:"rotation_period"`
		PublishAhead   time.Duration `yaml:"publish_ahead"`
	} `yaml:"signing_keys"`
	// Resources are the MCP servers and APIs agents may get tokens for. At
	// least one.
	Resources []OAuthResourceFile `yaml:"resources"`
}

// OAuthResourceFile is one registered resource.
type OAuthResourceFile struct {
	// URI is the resource's canonical URI, the aud of its tokens, compared
	// exactly (an MCP server's canonical server URI).
	URI string `yaml:"uri"`
	// Scopes are the scopes its tokens may carry. At least one.
	Scopes []string `yaml:"scopes"`
	// TokenTTL is its tokens' lifetime; default and maximum max_token_ttl.
	TokenTTL time.Duration `yaml:"token_ttl"`
	// IntrospectionSecretFile holds the secret the resource server
	// authenticates to introspection with (HTTP Basic, client id = uri).
	// Optional: without it the resource introspects over mTLS or not at all.
	IntrospectionSecretFile string `yaml:"introspection_secret_file"`
}

// OAuth is the validated `oauth` section.
type OAuth struct {
	Addr                      string
	Issuer                    string
	CertFile, KeyFile         string
	DangerouslyServePlaintext bool
	MaxTokenTTL               time.Duration
	RotationPeriod            time.Duration
	PublishAhead              time.Duration
	Resources                 []OAuthResource
}

// OAuthResource is one validated resource.
type OAuthResource struct {
	URI                     string
	Scopes                  delegation.ScopeSet
	TokenTTL                time.Duration
	IntrospectionSecretFile string
}

// build validates the section; nil for an absent one.
func (o *OAuthFile) build(fail func(string, string, ...any)) *OAuth {
	if o == nil {
		return nil
	}
	c := &OAuth{
		Addr: o.Listen, Issuer: o.Issuer, CertFile: o.TLS.CertFile, KeyFile: o.TLS.KeyFile,
		DangerouslyServePlaintext: o.DangerouslyServePlaintext, MaxTokenTTL: o.MaxTokenTTL,
		RotationPeriod: o.SigningKeys.RotationPeriod, PublishAhead: o.SigningKeys.PublishAhead,
	}
	if c.MaxTokenTTL == 0 {
		c.MaxTokenTTL = authserver.DefaultMaxTokenTTL
	}
	if c.MaxTokenTTL < time.Second || c.MaxTokenTTL > time.Hour {
		fail("oauth.max_token_ttl", "must be 1s..1h")
	}
	host, _, err := net.SplitHostPort(c.Addr)
	switch {
	case c.Addr == "":
		fail("oauth.listen", "is required")
	case err != nil:
		fail("oauth.listen", "%v", err)
	}
	if c.Issuer == "" {
		fail("oauth.issuer", "is required")
	}
	switch {
	case (c.CertFile == "") != (c.KeyFile == ""):
		fail("oauth.tls", "cert_file and key_file go together")
	case c.CertFile == "" && err == nil && !isLoopback(host) && !c.DangerouslyServePlaintext:
		fail("oauth.tls", "cert_file and key_file are required off loopback (or dangerously_serve_plaintext behind a TLS-terminating proxy)")
	case c.CertFile != "" && c.DangerouslyServePlaintext:
		fail("oauth.dangerously_serve_plaintext", "contradicts tls")
	}
	if len(o.Resources) == 0 {
		fail("oauth.resources", "at least one resource is required")
	}
	seen := map[string]bool{}
	for i, r := range o.Resources {
		key := fmt.Sprintf("oauth.resources[%d]", i)
		if err := authserver.CheckResourceURI(r.URI); err != nil {
			fail(key+".uri", "%v", err)
		}
		if seen[r.URI] {
			fail(key+".uri", "duplicate resource %q", r.URI)
		}
		seen[r.URI] = true
		scopes, err := delegation.ParseScopes(r.Scopes)
		if err != nil {
			fail(key+".scopes", "%v", err)
		} else if scopes.IsEmpty() {
			fail(key+".scopes", "at least one scope is required")
		}
		if r.TokenTTL < 0 || r.TokenTTL > c.MaxTokenTTL {
			fail(key+".token_ttl", "must be 0..max_token_ttl (%s)", c.MaxTokenTTL)
		}
		c.Resources = append(c.Resources, OAuthResource{URI: r.URI, Scopes: scopes, TokenTTL: r.TokenTTL, IntrospectionSecretFile: r.IntrospectionSecretFile})
	}
	return c
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
