package agentclient

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"

	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
)

// PerRPCCredentials attaches "authorization: Bearer <JWT-SVID>" to each gRPC
// call whose context carries a delegation (WithDelegation), the gRPC twin of
// Transport. Use it together with mTLS transport credentials
// (go-spiffe's grpccredentials.MTLSClientCredentials); it refuses to run
// over an insecure connection.
//
// gRPC hands per-RPC credentials to whatever peer the connection reached,
// so they check that peer themselves: before a token is fetched, the
// SPIFFE ID of the server's certificate must satisfy the authorizer, or the
// call fails and no token leaves the process.
type PerRPCCredentials struct {
	tokens     *DelegatedTokens
	audience   string
	authorizer tlsconfig.Authorizer
}

var _ credentials.PerRPCCredentials = (*PerRPCCredentials)(nil)

// NewPerRPCCredentials returns credentials that attach tokens for audience
// to calls whose server authorizer accepts (tlsconfig.AuthorizeID(service),
// usually the same authorizer as the transport credentials').
func NewPerRPCCredentials(tokens *DelegatedTokens, audience string, authorizer tlsconfig.Authorizer) (*PerRPCCredentials, error) {
	if tokens == nil {
		return nil, fmt.Errorf("agentclient: invalid config: token source is required")
	}
	if reason := audienceProblem(audience); reason != "" {
		return nil, fmt.Errorf("agentclient: invalid config: audience: %s", reason)
	}
	if authorizer == nil {
		return nil, fmt.Errorf("agentclient: invalid config: server authorizer is required")
	}
	return &PerRPCCredentials{tokens: tokens, audience: audience, authorizer: authorizer}, nil
}

// authorizePeer checks the server of the call in ctx against the
// authorizer. Errors wrap ErrPeerNotAuthorized.
func (c *PerRPCCredentials) authorizePeer(ctx context.Context) error {
	ri, ok := credentials.RequestInfoFromContext(ctx)
	if !ok {
		return fmt.Errorf("%w: no connection information for the call", ErrPeerNotAuthorized)
	}
	var state tls.ConnectionState
	switch info := ri.AuthInfo.(type) {
	case credentials.TLSInfo:
		state = info.State
	case *credentials.TLSInfo:
		state = info.State
	default:
		return fmt.Errorf("%w: the connection is not TLS", ErrPeerNotAuthorized)
	}
	if len(state.PeerCertificates) == 0 {
		return fmt.Errorf("%w: the server presented no certificate", ErrPeerNotAuthorized)
	}
	id, err := x509svid.IDFromCert(state.PeerCertificates[0])
	if err != nil {
		return fmt.Errorf("%w: the server's certificate has no SPIFFE ID: %w", ErrPeerNotAuthorized, err)
	}
	if err := c.authorizer(id, state.VerifiedChains); err != nil {
		return fmt.Errorf("%w: %w", ErrPeerNotAuthorized, err)
	}
	return nil
}

// GetRequestMetadata implements credentials.PerRPCCredentials. A call
// without a delegation in its context gets no metadata (mTLS only). A failed
// fetch fails the call before it is sent, with PermissionDenied for
// ErrDelegationDenied, Unavailable for ErrUnavailable and ErrNoIdentity, and
// Unauthenticated (gRPC's default for credential errors) otherwise; the
// message is the fetch error's. A server the authorizer refuses fails the
// call with Unauthenticated and ErrPeerNotAuthorized's text, before any
// token is fetched.
func (c *PerRPCCredentials) GetRequestMetadata(ctx context.Context, _ ...string) (map[string]string, error) {
	id, ok := DelegationFrom(ctx)
	if !ok {
		return nil, nil
	}
	if err := c.authorizePeer(ctx); err != nil {
		return nil, status.Error(codes.Unauthenticated, err.Error())
	}
	tok, err := c.tokens.Token(ctx, id, c.audience)
	switch {
	case err == nil:
	case errors.Is(err, ErrDelegationDenied):
		return nil, status.Error(codes.PermissionDenied, err.Error())
	case errors.Is(err, ErrUnavailable), errors.Is(err, ErrNoIdentity):
		return nil, status.Error(codes.Unavailable, err.Error())
	default:
		return nil, err
	}
	return map[string]string{"authorization": "Bearer " + tok.Value}, nil
}

// RequireTransportSecurity implements credentials.PerRPCCredentials: a
// bearer token never travels in clear text.
func (c *PerRPCCredentials) RequireTransportSecurity() bool { return true }
