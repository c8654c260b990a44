package mcpauth

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/oauthex"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/agentid/agentid/pkg/claims"
	"github.com/agentid/agentid/pkg/delegation"
)

// Defaults of VerifierConfig.
const (
	// DefaultRefreshInterval is the least time between two JWKS fetches
	// that an unknown kid triggers: tokens with made-up kids cannot make
	// the verifier hammer agentid-server.
	DefaultRefreshInterval = 10 * time.Second
	// DefaultJWKSMaxAge is how long a fetched JWKS is used before it is
	// fetched again in the background of a request.
	DefaultJWKSMaxAge = 10 * time.Minute
	// maxDocument bounds the metadata and JWKS documents read.
	maxDocument = 1 << 20
	// maxToken bounds a bearer token (agentid's are under 2 KiB).
	maxToken = 8 << 10
	// maxRPCBody bounds the JSON-RPC body read to find tool calls.
	maxRPCBody = 4 << 20
)

// ExtraKey is the TokenInfo.Extra key holding the Caller.
const ExtraKey = "agentid"

// VerifierConfig configures a Verifier. Issuer and Resource are required.
type VerifierConfig struct {
	// Issuer is agentid-server's OAuth issuer URL; tokens must carry it as
	// iss, and its RFC 8414 metadata names the JWKS.
	Issuer string
	// Resource is this server's canonical URI, which tokens must carry as
	// aud exactly: a token agentid-server issued for another resource is
	// refused, as the MCP authorization spec requires.
	Resource string
	// HTTPClient fetches the issuer's metadata and JWKS. Default
	// http.DefaultClient.
	HTTPClient *http.Client
	// RefreshInterval rate-limits JWKS fetches for unknown kids. Default
	// DefaultRefreshInterval.
	RefreshInterval time.Duration
	// Clock returns the current time. Default time.Now.
	Clock func() time.Time
}

// Verifier checks agentid access tokens for one resource. Its Verify is a
// go-sdk auth.TokenVerifier. It is safe for concurrent use.
type Verifier struct {
	config VerifierConfig

	mu      sync.Mutex
	jwksURI string
	keys    *jose.JSONWebKeySet
	fetched time.Time // last successful or failed fetch
	loaded  time.Time // last successful fetch
}

// NewVerifier validates config.
func NewVerifier(config VerifierConfig) (*Verifier, error) {
	for name, v := range map[string]string{"issuer": config.Issuer, "resource": config.Resource} {
		if u, err := url.Parse(v); err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
			return nil, fmt.Errorf("mcpauth: invalid config: %s %q is not an absolute http(s) URL", name, v)
		}
	}
	if config.HTTPClient == nil {
		config.HTTPClient = http.DefaultClient
	}
	if config.RefreshInterval <= 0 {
		config.RefreshInterval = DefaultRefreshInterval
	}
	if config.Clock == nil {
		config.Clock = time.Now
	}
	return &Verifier{config: config}, nil
}

// Caller is who a verified token speaks for: agent Agent acting for User,
// with the agents before it in Chain, under a delegation.
type Caller struct {
	// User is the delegating user (the token's sub is its String).
	User delegation.User
	// Agent is the agent presenting the token (client_id, act.sub).
	Agent spiffeid.ID
	// Chain lists the agents from the one the user delegated to, to Agent.
	Chain []spiffeid.ID
	// Scopes are the token's scopes.
	Scopes delegation.ScopeSet
	// Delegation and Root identify the delegation and its chain's root.
	Delegation, Root delegation.ID
	// ExpiresAt is the token's exp.
	ExpiresAt time.Time
}

// String reads "spiffe://…/agent acting for https://idp#alice", with the
// earlier agents after "via".
func (c Caller) String() string {
	s := c.Agent.String() + " acting for " + c.User.String()
	if len(c.Chain) > 1 {
		via := make([]string, len(c.Chain)-1)
		for i, a := range c.Chain[:len(c.Chain)-1] {
			via[i] = a.String()
		}
		s += " via " + strings.Join(via, ", ")
	}
	return s
}

// CallerFrom returns the Caller a Verifier put in a TokenInfo (a tool
// handler's req.Extra.TokenInfo, or auth.TokenInfoFromContext).
func CallerFrom(ti *auth.TokenInfo) (Caller, bool) {
	if ti == nil {
		return Caller{}, false
	}
	c, ok := ti.Extra[ExtraKey].(Caller)
	return c, ok
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", auth.ErrInvalidToken, fmt.Sprintf(format, args...))
}

// Verify checks token: an ES256 JWS with typ at+jwt under a key of the
// issuer's JWKS, iss = the issuer, aud = the resource, not expired, agentid's
// claims well formed, and, when the token is bound (cnf.x5t#S256), the TLS
// client certificate of req is the one it is bound to. Failures wrap
// auth.ErrInvalidToken (go-sdk answers 401) and never hold the token.
func (v *Verifier) Verify(ctx context.Context, token string, req *http.Request) (*auth.TokenInfo, error) {
	if len(token) > maxToken {
		return nil, invalid("token too large")
	}
	jws, err := jose.ParseSignedCompact(token, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil || len(jws.Signatures) != 1 {
		return nil, invalid("not an ES256 JWS")
	}
	h := jws.Signatures[0].Header
	if typ, _ := h.ExtraHeaders[jose.HeaderType].(string); typ != claims.AccessTokenType {
		return nil, invalid("typ is not %s", claims.AccessTokenType)
	}
	key, err := v.key(ctx, h.KeyID)
	if err != nil {
		return nil, err
	}
	payload, err := jws.Verify(key)
	if err != nil {
		return nil, invalid("bad signature")
	}
	at, err := claims.DecodeAccessToken(payload)
	if err != nil {
		return nil, invalid("%v", err)
	}
	now := v.config.Clock()
	switch {
	case at.Issuer != v.config.Issuer:
		return nil, invalid("issued by another issuer")
	case at.Audience != v.config.Resource:
		return nil, invalid("issued for another resource")
	case !now.Before(at.ExpiresAt):
		return nil, invalid("expired")
	case at.IssuedAt.After(now.Add(time.Minute)):
		return nil, invalid("issued in the future")
	}
	if at.CertThumbprint != "" {
		if req == nil || req.TLS == nil || len(req.TLS.PeerCertificates) == 0 {
			return nil, invalid("bound to a certificate the client did not present")
		}
		sum := sha256.Sum256(req.TLS.PeerCertificates[0].Raw)
		if subtle.ConstantTimeCompare([]byte(base64.RawURLEncoding.EncodeToString(sum[:])), []byte(at.CertThumbprint)) != 1 {
			return nil, invalid("bound to another certificate")
		}
	}
	c := Caller{User: at.User, Agent: at.Agent(), Chain: at.Chain, Scopes: at.Scopes,
		Delegation: at.Delegation, Root: at.Root, ExpiresAt: at.ExpiresAt}
	return &auth.TokenInfo{
		Scopes: at.Scopes.Strings(), Expiration: at.ExpiresAt,
		// go-sdk ties a session to UserID: one user through one agent, so
		// that another agent of the same user cannot take the session over.
		UserID: claims.SubjectOf(at.User) + " " + at.Agent().String(),
		Extra:  map[string]any{ExtraKey: c},
	}, nil
}

// key returns the public key kid names, fetching the JWKS when it is not
// loaded or too old, or when kid is unknown and the last fetch is older than
// RefreshInterval (keys are published ahead of use, so an unknown kid is
// rare and usually made up).
func (v *Verifier) key(ctx context.Context, kid string) (any, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	now := v.config.Clock()
	stale := v.keys == nil || now.Sub(v.loaded) > DefaultJWKSMaxAge
	unknown := v.keys != nil && len(v.keys.Key(kid)) == 0
	if (stale || unknown) && (v.fetched.IsZero() || now.Sub(v.fetched) >= v.config.RefreshInterval) {
		v.fetched = now
		set, err := v.fetchJWKS(ctx)
		switch {
		case err == nil:
			v.keys, v.loaded = set, now
		case v.keys == nil:
			return nil, fmt.Errorf("mcpauth: cannot verify tokens: %w", err)
		}
		// A failed refresh keeps the keys loaded: they outlive an outage.
	}
	if v.keys == nil {
		return nil, errors.New("mcpauth: cannot verify tokens: no JWKS loaded")
	}
	keys := v.keys.Key(kid)
	if len(keys) != 1 {
		return nil, invalid("unknown key id")
	}
	return keys[0].Key, nil
}

// fetchJWKS reads the issuer's metadata for its jwks_uri (once) and then
// the JWKS.
func (v *Verifier) fetchJWKS(ctx context.Context) (*jose.JSONWebKeySet, error) {
	if v.jwksURI == "" {
		u, _ := url.Parse(v.config.Issuer)
		u.Path = "/.well-known/oauth-authorization-server" + strings.TrimSuffix(u.Path, "/")
		var md struct {
			Issuer  string `json:"issuer"`
			JWKSURI string `json:"jwks_uri"`
		}
		if err := getJSON(ctx, v.config.HTTPClient, u.String(), &md); err != nil {
			return nil, err
		}
		if md.Issuer != v.config.Issuer || md.JWKSURI == "" {
			return nil, fmt.Errorf("authorization server metadata names issuer %q, want %q, jwks_uri %q", md.Issuer, v.config.Issuer, md.JWKSURI)
		}
		v.jwksURI = md.JWKSURI
	}
	var set jose.JSONWebKeySet
	if err := getJSON(ctx, v.config.HTTPClient, v.jwksURI, &set); err != nil {
		return nil, err
	}
	return &set, nil
}

func getJSON(ctx context.Context, c *http.Client, u string, into any) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: status %d", u, resp.StatusCode)
	}
	return json.NewDecoder(io.LimitReader(resp.Body, maxDocument)).Decode(into)
}

// MetadataPath is where RFC 9728 puts the protected resource metadata of
// resource: the well-known segment before the resource's path.
func MetadataPath(resource string) string {
	u, err := url.Parse(resource)
	if err != nil {
		return "/.well-known/oauth-protected-resource"
	}
	return "/.well-known/oauth-protected-resource" + strings.TrimSuffix(u.Path, "/")
}

// MetadataHandler serves the RFC 9728 protected resource metadata of
// resource: agentid-server's issuer as its one authorization server, the
// scopes it knows, bearer tokens in the header, certificate-bound tokens
// honoured.
func MetadataHandler(resource, issuer string, scopes []string) http.Handler {
	return auth.ProtectedResourceMetadataHandler(&oauthex.ProtectedResourceMetadata{
		Resource: resource, AuthorizationServers: []string{issuer}, ScopesSupported: scopes,
		BearerMethodsSupported: []string{"header"}, TLSClientCertificateBoundAccessTokens: true,
	})
}

// ProtectConfig configures Protect. Verifier and ResourceMetadataURL are
// required.
type ProtectConfig struct {
	Verifier *Verifier
	// ResourceMetadataURL is the absolute URL of MetadataHandler, named in
	// every 401 and 403 (WWW-Authenticate resource_metadata).
	ResourceMetadataURL string
	// ToolScopes are the scopes each tool needs (tools/call by name). A
	// call of a tool whose scopes the token lacks is answered 403 with
	// error="insufficient_scope" and the scopes it needs, before the MCP
	// server sees it.
	ToolScopes map[string][]string
}

// Protect puts h (a go-sdk StreamableHTTPHandler) behind agentid access
// tokens: no valid token is 401 with resource_metadata (go-sdk's
// RequireBearerToken), a tool call without the tool's scopes 403
// insufficient_scope. The tool handler reads the caller with CallerFrom.
func Protect(h http.Handler, config ProtectConfig) (http.Handler, error) {
	if config.Verifier == nil || config.ResourceMetadataURL == "" {
		return nil, errors.New("mcpauth: invalid config: verifier and resource metadata URL are required")
	}
	for tool, scopes := range config.ToolScopes {
		if _, err := delegation.ParseScopes(scopes); err != nil || len(scopes) == 0 {
			return nil, fmt.Errorf("mcpauth: invalid config: tool %q: scopes %q", tool, scopes)
		}
	}
	scoped := &toolScopes{next: h, scopes: config.ToolScopes, metadata: config.ResourceMetadataURL}
	return auth.RequireBearerToken(config.Verifier.Verify, &auth.RequireBearerTokenOptions{
		ResourceMetadataURL: config.ResourceMetadataURL,
	})(scoped), nil
}

type toolScopes struct {
	next     http.Handler
	scopes   map[string][]string
	metadata string
}

type rpcCall struct {
	Method string `json:"method"`
	Params struct {
		Name string `json:"name"`
	} `json:"params"`
}

func (t *toolScopes) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || len(t.scopes) == 0 {
		t.next.ServeHTTP(w, r)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxRPCBody+1))
	r.Body.Close()
	if err != nil || len(body) > maxRPCBody {
		http.Error(w, "request body unreadable or too large", http.StatusRequestEntityTooLarge)
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	var calls []rpcCall
	if trimmed := bytes.TrimSpace(body); len(trimmed) > 0 && trimmed[0] == '[' {
		_ = json.Unmarshal(trimmed, &calls) // a malformed body is the MCP server's to refuse
	} else {
		var one rpcCall
		if json.Unmarshal(trimmed, &one) == nil {
			calls = append(calls, one)
		}
	}
	held := map[string]bool{}
	if ti := auth.TokenInfoFromContext(r.Context()); ti != nil {
		for _, s := range ti.Scopes {
			held[s] = true
		}
	}
	for _, c := range calls {
		if c.Method != "tools/call" {
			continue
		}
		need := t.scopes[c.Params.Name]
		for _, s := range need {
			if !held[s] {
				// RFC 6750 §3.1 and the MCP authorization spec: the scopes the
				// call needs, so the client can ask for them.
				w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer error="insufficient_scope", scope=%q, resource_metadata=%q`,
					strings.Join(need, " "), t.metadata))
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusForbidden)
				_, _ = w.Write([]byte(`{"error":"insufficient_scope"}`))
				return
			}
		}
	}
	t.next.ServeHTTP(w, r)
}
