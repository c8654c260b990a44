package agentclient

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
)

// PerRPCCredentials attaches "authorization: Bearer <JWT-SVID>" to each gRPC
// call whose context carries a delegation (WithDelegation), the gRPC twin of
// Transport. Use it together with mTLS transport credentials
// (go-spiffe's grpccredentials.MTLSClientCredentials); it refuses to run
// over an insecure connection.
type PerRPCCredentials struct {
	tokens   *DelegatedTokens
	audience string
}

var _ credentials.PerRPCCredentials = (*PerRPCCredentials)(nil)

// NewPerRPCCredentials returns credentials that attach tokens for audience.
func NewPerRPCCredentials(tokens *DelegatedTokens, audience string) (*PerRPCCredentials, error) {
	if tokens == nil {
		return nil, fmt.Errorf("agentclient: invalid config: token source is required")
	}
	if audience == "" || len(audience) > maxAudienceLength {
		return nil, fmt.Errorf("agentclient: invalid config: audience must be 1..%d bytes", maxAudienceLength)
	}
	return &PerRPCCredentials{tokens: tokens, audience: audience}, nil
}

// GetRequestMetadata implements credentials.PerRPCCredentials. A call
// without a delegation in its context gets no metadata (mTLS only). A failed
// fetch fails the call before it is sent, with PermissionDenied for
// ErrDelegationDenied, Unavailable for ErrUnavailable and ErrNoIdentity, and
// Unauthenticated (gRPC's default for credential errors) otherwise; the
// message is the fetch error's.
func (c *PerRPCCredentials) GetRequestMetadata(ctx context.Context, _ ...string) (map[string]string, error) {
	id, ok := DelegationFrom(ctx)
	if !ok {
		return nil, nil
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
