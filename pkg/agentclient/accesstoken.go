package agentclient

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"

	"github.com/agentid/agentid/pkg/delegation"
	"github.com/agentid/agentid/pkg/internal/listener"
)

// grantTypeJWTBearer is RFC 7523's grant type, which agentid-server's token
// endpoint answers with an access token for a delegated JWT-SVID.
const grantTypeJWTBearer = "urn:ietf:params:oauth:grant-type:jwt-bearer" //nolint:gosec // RFC 7523's grant type URN, not a credential

// maxTokenResponse bounds a token endpoint's answer.
const maxTokenResponse = 64 << 10

// AccessTokensConfig configures AccessTokens. Tokens and Issuer are
// required.
type AccessTokensConfig struct {
	// Tokens fetches the delegated JWT-SVIDs that are the grant's
	// assertions, with audience Issuer (agent.Tokens()).
	Tokens *DelegatedTokens
	// Issuer is agentid-server's OAuth issuer URL. Assertions go only to the
	// token endpoint its RFC 8414 metadata names, and only when that
	// metadata's issuer is exactly Issuer: an assertion is a credential
	// for the agent, never sent where a resource says.
	Issuer string
	// HTTPClient reaches the issuer. When it presents the agent's X509-SVID
	// as client certificate (Agent.OAuthHTTPClient), tokens are bound to it
	// (RFC 8705) and resource servers that check the binding accept them
	// only over a connection with that certificate. Default
	// http.DefaultClient (unbound bearer tokens).
	HTTPClient *http.Client
	// Clock returns the current time. Default time.Now.
	Clock func() time.Time
	// MaxCachedTokens bounds the cache. Default DefaultMaxCachedTokens.
	MaxCachedTokens int
}

// AccessToken is an RFC 9068 access token agentid-server issued for a
// resource under a delegation.
type AccessToken struct {
	// Value is the JWT, for "Authorization: Bearer".
	Value string
	// Resource is the resource (aud) it is for.
	Resource string
	// Scope is the granted scope, space-separated.
	Scope string
	// Delegation is the delegation it was issued under.
	Delegation delegation.ID
	// ExpiresAt is when it expires, from expires_in and the local clock.
	ExpiresAt time.Time
	obtained  time.Time
}

// OAuth2 is the token as golang.org/x/oauth2 carries it.
func (t AccessToken) OAuth2() *oauth2.Token {
	return &oauth2.Token{AccessToken: t.Value, TokenType: "Bearer", Expiry: t.ExpiresAt, ExpiresIn: int64(time.Until(t.ExpiresAt) / time.Second)}
}

// AccessTokens trades the agent's delegated JWT-SVIDs for access tokens at
// agentid-server's token endpoint (RFC 7523 jwt-bearer grant, RFC 8707
// resource) and caches each until half its life, keyed by delegation,
// resource and scope. It is safe for concurrent use; concurrent callers for
// one key share one request.
//
// The token endpoint's refusals wrap ErrDelegationDenied and an
// *oauth2.RetrieveError whose ErrorCode is the RFC 6749 code
// (invalid_grant: the delegation is revoked, expired or not the agent's;
// invalid_scope: a scope asked for is not delegated or not allowed for the
// resource; invalid_target: the resource is not registered). A server that
// cannot be reached or answers 5xx is ErrUnavailable.
type AccessTokens struct {
	tokens *DelegatedTokens
	issuer string
	client *http.Client
	clock  func() time.Time
	max    int

	endpointMu sync.Mutex
	endpoint   string // discovered once

	mu      sync.Mutex
	entries map[accessKey]*accessEntry
}

type accessKey struct {
	id       delegation.ID
	resource string
	scope    string
}

type accessEntry struct {
	sem   chan struct{} // one request at a time per key
	token AccessToken
	ok    bool
}

// NewAccessTokens validates config and returns an empty cache.
func NewAccessTokens(config AccessTokensConfig) (*AccessTokens, error) {
	switch {
	case config.Tokens == nil:
		return nil, errors.New("agentclient: invalid config: delegated tokens are required")
	case config.MaxCachedTokens < 0:
		return nil, fmt.Errorf("agentclient: invalid config: max cached tokens %d is negative", config.MaxCachedTokens)
	}
	u, err := url.Parse(config.Issuer)
	if err != nil || u.Host == "" || (u.Scheme != "https" && !(u.Scheme == "http" && isLoopbackHost(u.Hostname()))) {
		return nil, fmt.Errorf("agentclient: invalid config: issuer %q must be an https URL (http only on loopback)", config.Issuer)
	}
	if config.HTTPClient == nil {
		config.HTTPClient = http.DefaultClient
	}
	if config.Clock == nil {
		config.Clock = time.Now
	}
	if config.MaxCachedTokens == 0 {
		config.MaxCachedTokens = DefaultMaxCachedTokens
	}
	return &AccessTokens{tokens: config.Tokens, issuer: config.Issuer, client: config.HTTPClient, clock: config.Clock,
		max: config.MaxCachedTokens, entries: map[accessKey]*accessEntry{}}, nil
}

// OAuthHTTPClient is an HTTP client that presents the agent's current
// X509-SVID as its client certificate and verifies servers against roots
// (web PKI: agentid-server's OAuth listener has an ordinary certificate;
// nil: the system's roots). Tokens fetched through it are bound to the
// certificate.
func (a *Agent) OAuthHTTPClient(roots *x509.CertPool) *http.Client {
	return &http.Client{Timeout: fetchTimeout, Transport: &http.Transport{
		Proxy: http.ProxyFromEnvironment, ForceAttemptHTTP2: true,
		TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: roots,
			GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
				svid, err := a.x509.GetX509SVID()
				if err != nil {
					return nil, err
				}
				c := &tls.Certificate{PrivateKey: svid.PrivateKey, Leaf: svid.Certificates[0]}
				for _, x := range svid.Certificates {
					c.Certificate = append(c.Certificate, x.Raw)
				}
				return c, nil
			}},
	}}
}

// AccessTokens returns the agent's access token cache for issuer, fetching
// through client (nil: http.DefaultClient).
func (a *Agent) AccessTokens(issuer string, client *http.Client) (*AccessTokens, error) {
	return NewAccessTokens(AccessTokensConfig{Tokens: a.tokens, Issuer: issuer, HTTPClient: client, Clock: a.tokens.clock})
}

// Token returns an access token for resource under delegation id with the
// scopes asked (none: all that the delegation and the resource allow), from
// the cache while younger than half its life.
func (a *AccessTokens) Token(ctx context.Context, id delegation.ID, resource string, scopes ...string) (AccessToken, error) {
	if id.IsZero() {
		return AccessToken{}, fmt.Errorf("%w: delegation id is required", ErrInvalidRequest)
	}
	if resource == "" || len(resource) > maxAudienceLength {
		return AccessToken{}, fmt.Errorf("%w: resource must be 1..%d bytes", ErrInvalidRequest, maxAudienceLength)
	}
	scope := ""
	if len(scopes) > 0 {
		set, err := delegation.ParseScopes(scopes)
		if err != nil {
			return AccessToken{}, fmt.Errorf("%w: %w", ErrInvalidRequest, err)
		}
		scope = set.String()
	}
	key := accessKey{id: id, resource: resource, scope: scope}
	a.mu.Lock()
	e := a.entries[key]
	if e == nil {
		a.evictLocked()
		e = &accessEntry{sem: make(chan struct{}, 1)}
		a.entries[key] = e
	}
	a.mu.Unlock()

	select {
	case e.sem <- struct{}{}:
	case <-ctx.Done():
		return AccessToken{}, fmt.Errorf("%w: %w", ErrUnavailable, ctx.Err())
	}
	defer func() { <-e.sem }()
	now := a.clock()
	if e.ok && now.Before(e.token.obtained.Add(e.token.ExpiresAt.Sub(e.token.obtained)/2)) {
		return e.token, nil
	}
	tok, err := a.fetch(ctx, key)
	if err != nil {
		e.ok = false
		return AccessToken{}, err
	}
	e.token, e.ok = tok, true
	return tok, nil
}

// Forget drops the cached token for the key, so that the next Token asks
// anew: a resource answered 401 (the token was revoked, or its key rotated
// out).
func (a *AccessTokens) Forget(id delegation.ID, resource string, scopes ...string) {
	scope := ""
	if len(scopes) > 0 {
		if set, err := delegation.ParseScopes(scopes); err == nil {
			scope = set.String()
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if e := a.entries[accessKey{id: id, resource: resource, scope: scope}]; e != nil {
		e.ok = false
	}
}

// evictLocked makes room for one entry: expired ones first, then any.
func (a *AccessTokens) evictLocked() {
	if len(a.entries) < a.max {
		return
	}
	now := a.clock()
	for k, e := range a.entries {
		if !e.ok || !now.Before(e.token.ExpiresAt) {
			delete(a.entries, k)
		}
	}
	for k := range a.entries {
		if len(a.entries) < a.max {
			return
		}
		delete(a.entries, k)
	}
}

// TokenSource is an oauth2.TokenSource of access tokens for resource under
// delegation id; ctx bounds each fetch (as oauth2.Config.TokenSource's
// does). Wrap it in oauth2.ReuseTokenSource only if the cache here is not
// enough; it already reuses tokens until half their life.
func (a *AccessTokens) TokenSource(ctx context.Context, id delegation.ID, resource string, scopes ...string) oauth2.TokenSource {
	return &tokenSource{ctx: ctx, a: a, id: id, resource: resource, scopes: scopes}
}

type tokenSource struct {
	ctx      context.Context
	a        *AccessTokens
	id       delegation.ID
	resource string
	scopes   []string
}

func (s *tokenSource) Token() (*oauth2.Token, error) {
	t, err := s.a.Token(s.ctx, s.id, s.resource, s.scopes...)
	if err != nil {
		return nil, err
	}
	return t.OAuth2(), nil
}

// tokenEndpoint discovers the token endpoint from the issuer's RFC 8414
// metadata (the well-known segment inserted before the issuer's path).
func (a *AccessTokens) tokenEndpoint(ctx context.Context) (string, error) {
	a.endpointMu.Lock()
	defer a.endpointMu.Unlock()
	if a.endpoint != "" {
		return a.endpoint, nil
	}
	u, _ := url.Parse(a.issuer)
	u.Path = "/.well-known/oauth-authorization-server" + strings.TrimSuffix(u.Path, "/")
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrInvalidRequest, err)
	}
	resp, err := a.client.Do(req)
	if err != nil {
		return "", fmt.Errorf("%w: authorization server metadata: %w", ErrUnavailable, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%w: authorization server metadata: status %d", ErrUnavailable, resp.StatusCode)
	}
	var md struct {
		Issuer        string `json:"issuer"`
		TokenEndpoint string `json:"token_endpoint"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxTokenResponse)).Decode(&md); err != nil {
		return "", fmt.Errorf("%w: authorization server metadata: %w", ErrUnavailable, err)
	}
	// RFC 8414 §3.3: the metadata's issuer must be the one asked about.
	te, err := url.Parse(md.TokenEndpoint)
	if md.Issuer != a.issuer || err != nil || te.Host == "" || (te.Scheme != "https" && !(te.Scheme == "http" && isLoopbackHost(te.Hostname()))) {
		return "", fmt.Errorf("%w: authorization server metadata names issuer %q and token endpoint %q, want issuer %q and an https endpoint",
			ErrInvalidRequest, md.Issuer, md.TokenEndpoint, a.issuer)
	}
	a.endpoint = md.TokenEndpoint
	return a.endpoint, nil
}

func (a *AccessTokens) fetch(ctx context.Context, key accessKey) (AccessToken, error) {
	endpoint, err := a.tokenEndpoint(ctx)
	if err != nil {
		return AccessToken{}, err
	}
	assertion, err := a.tokens.Token(ctx, key.id, a.issuer)
	if err != nil {
		return AccessToken{}, err
	}
	form := url.Values{"grant_type": {grantTypeJWTBearer}, "assertion": {assertion.Value}, "resource": {key.resource}}
	if key.scope != "" {
		form.Set("scope", key.scope)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return AccessToken{}, fmt.Errorf("%w: %w", ErrInvalidRequest, err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	sent := a.clock()
	resp, err := a.client.Do(req)
	if err != nil {
		return AccessToken{}, fmt.Errorf("%w: token endpoint: %w", ErrUnavailable, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxTokenResponse))
	if err != nil {
		return AccessToken{}, fmt.Errorf("%w: token endpoint: %w", ErrUnavailable, err)
	}
	if resp.StatusCode != http.StatusOK {
		re := &oauth2.RetrieveError{Response: resp, Body: body}
		var eb struct {
			Error       string `json:"error"`
			Description string `json:"error_description"`
		}
		if json.Unmarshal(body, &eb) == nil {
			re.ErrorCode, re.ErrorDescription = eb.Error, eb.Description
		}
		if resp.StatusCode >= 500 || re.ErrorCode == "" {
			return AccessToken{}, fmt.Errorf("%w: token endpoint: %w", ErrUnavailable, re)
		}
		return AccessToken{}, fmt.Errorf("%w: token endpoint: %w", ErrDelegationDenied, re)
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "application/json" {
		return AccessToken{}, fmt.Errorf("%w: token endpoint answered %q, not JSON", ErrUnavailable, mt)
	}
	var tr struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
		ExpiresIn   int64  `json:"expires_in"`
		Scope       string `json:"scope"`
	}
	if err := json.Unmarshal(body, &tr); err != nil || tr.AccessToken == "" || !strings.EqualFold(tr.TokenType, "Bearer") ||
		tr.ExpiresIn <= 0 || tr.ExpiresIn > 24*3600 {
		return AccessToken{}, fmt.Errorf("%w: token endpoint: malformed token response", ErrUnavailable)
	}
	return AccessToken{Value: tr.AccessToken, Resource: key.resource, Scope: tr.Scope, Delegation: key.id,
		ExpiresAt: sent.Add(time.Duration(tr.ExpiresIn) * time.Second), obtained: sent}, nil
}

// isLoopbackHost reports whether host is a loopback IP or "localhost": the
// only hosts plain http is allowed to, for tests and development.
func isLoopbackHost(host string) bool {
	_, err := listener.Loopback(net.JoinHostPort(host, "0"))
	return err == nil
}
