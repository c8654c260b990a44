package agentclient

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"time"

	"github.com/agentid/agentid/pkg/delegation"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

type delegationKey struct{}

// WithDelegation returns a context under which Transport and
// PerRPCCredentials attach a JWT-SVID issued under delegation id. A request
// whose context carries none is sent with the agent's X509-SVID only: the
// agent acting for itself.
func WithDelegation(ctx context.Context, id delegation.ID) context.Context {
	return context.WithValue(ctx, delegationKey{}, id)
}

// DelegationFrom returns the delegation WithDelegation put in ctx.
func DelegationFrom(ctx context.Context) (delegation.ID, bool) {
	id, ok := ctx.Value(delegationKey{}).(delegation.ID)
	return id, ok && !id.IsZero()
}

// TransportConfig configures a Transport. All fields but Tokens and
// MaxIdleConnsPerHost are required.
type TransportConfig struct {
	// SVIDs is the agent's X509-SVID, presented as client certificate (a
	// workloadapi.X509Source keeps it rotated).
	SVIDs x509svid.Source
	// Bundles verifies the server's X509-SVID.
	Bundles x509bundle.Source
	// Authorizer decides whether the server's SPIFFE ID is the one the agent
	// means to talk to, e.g. tlsconfig.AuthorizeID(serviceID). A server that
	// fails it gets neither the request nor the token (ErrPeerNotAuthorized).
	Authorizer tlsconfig.Authorizer
	// Tokens supplies delegated JWT-SVIDs. nil means the transport never
	// attaches one, and a request under WithDelegation fails.
	Tokens *DelegatedTokens
	// Audience is the audience of the attached tokens: the service's SPIFFE
	// ID or URL, whatever it verifies (pkg/verify Config.Audiences).
	// Required with Tokens.
	Audience string
	// MaxIdleConnsPerHost sizes the connection pool. Default 64.
	MaxIdleConnsPerHost int
}

// Transport is an http.RoundTripper for https:// URLs: it dials mTLS with
// the agent's X509-SVID, checks the server's SPIFFE ID with the authorizer,
// and attaches "Authorization: Bearer <JWT-SVID>" for the delegation in the
// request's context. Connections are pooled HTTP/1.1 keep-alive
// connections (measured here with lower median and tail latency than HTTP/2
// for small agent calls). The token is fetched before a connection is used,
// so a denied delegation costs no round trip.
type Transport struct {
	base     *http.Transport
	tokens   *DelegatedTokens
	audience string
}

// NewTransport validates config and returns a Transport.
func NewTransport(config TransportConfig) (*Transport, error) {
	switch {
	case config.SVIDs == nil:
		return nil, fmt.Errorf("agentclient: invalid config: X509-SVID source is required")
	case config.Bundles == nil:
		return nil, fmt.Errorf("agentclient: invalid config: bundle source is required")
	case config.Authorizer == nil:
		return nil, fmt.Errorf("agentclient: invalid config: authorizer is required (which server SPIFFE ID is expected?)")
	case config.Tokens != nil && audienceProblem(config.Audience) != "":
		return nil, fmt.Errorf("agentclient: invalid config: audience: %s", audienceProblem(config.Audience))
	case config.MaxIdleConnsPerHost < 0:
		return nil, fmt.Errorf("agentclient: invalid config: max idle connections %d is negative", config.MaxIdleConnsPerHost)
	}
	if config.MaxIdleConnsPerHost == 0 {
		config.MaxIdleConnsPerHost = 64
	}
	return &Transport{
		base: &http.Transport{
			TLSClientConfig:     ClientTLSConfig(config.SVIDs, config.Bundles, config.Authorizer),
			MaxIdleConns:        4 * config.MaxIdleConnsPerHost,
			MaxIdleConnsPerHost: config.MaxIdleConnsPerHost,
			IdleConnTimeout:     90 * time.Second,
			TLSHandshakeTimeout: 10 * time.Second,
		},
		tokens:   config.Tokens,
		audience: config.Audience,
	}, nil
}

// ClientTLSConfig is go-spiffe's mTLS client configuration whose authorizer
// errors wrap ErrPeerNotAuthorized. It keeps no session cache, so every
// connection runs the full certificate check.
func ClientTLSConfig(svids x509svid.Source, bundles x509bundle.Source, authorizer tlsconfig.Authorizer) *tls.Config {
	c := tlsconfig.MTLSClientConfig(svids, bundles, markAuthorizer(authorizer))
	c.ClientSessionCache = nil
	return c
}

// markAuthorizer wraps an authorizer's refusals in ErrPeerNotAuthorized so a
// caller can tell "wrong server" from other handshake failures.
func markAuthorizer(a tlsconfig.Authorizer) tlsconfig.Authorizer {
	return func(id spiffeid.ID, chains [][]*x509.Certificate) error {
		if err := a(id, chains); err != nil {
			return fmt.Errorf("%w: %s: %w", ErrPeerNotAuthorized, id, err)
		}
		return nil
	}
}

// RoundTrip implements http.RoundTripper. It does not modify req.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL == nil || req.URL.Scheme != "https" {
		closeBody(req)
		return nil, ErrInsecureScheme
	}
	id, ok := DelegationFrom(req.Context())
	if !ok {
		return t.base.RoundTrip(req)
	}
	if t.tokens == nil {
		closeBody(req)
		return nil, fmt.Errorf("%w: request carries delegation %s but the transport has no token source", ErrInvalidRequest, id)
	}
	tok, err := t.tokens.Token(req.Context(), id, t.audience)
	if err != nil {
		closeBody(req)
		return nil, err
	}
	out := req.Clone(req.Context())
	out.Header.Set("Authorization", "Bearer "+tok.Value)
	return t.base.RoundTrip(out)
}

// CloseIdleConnections closes pooled connections that are not in use.
func (t *Transport) CloseIdleConnections() { t.base.CloseIdleConnections() }

func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}
