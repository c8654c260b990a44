package spireapi

import (
	"context"
	"crypto"
	"crypto/x509"
	"fmt"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"github.com/spiffe/go-spiffe/v2/bundle/spiffebundle"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	bundlev1 "github.com/spiffe/spire-api-sdk/proto/spire/api/server/bundle/v1"
	apitypes "github.com/spiffe/spire-api-sdk/proto/spire/api/types"
)

// GetBundle returns the bundle of the server's own trust domain: its X.509
// authorities (to verify X509-SVIDs) and JWT authorities (to verify
// JWT-SVIDs). SPIRE serves it to any caller.
func (c *Client) GetBundle(ctx context.Context) (*spiffebundle.Bundle, error) {
	resp, err := c.bundle.GetBundle(ctx, &bundlev1.GetBundleRequest{})
	if err != nil {
		return nil, fmt.Errorf("spireapi: failed to get bundle: %w", err)
	}
	return bundleFromAPI(resp)
}

// GetFederatedBundle returns the bundle the server holds for another trust
// domain. SPIRE answers INVALID_ARGUMENT for its own trust domain (use
// GetBundle) and NOT_FOUND for a trust domain it does not federate with.
func (c *Client) GetFederatedBundle(ctx context.Context, td spiffeid.TrustDomain) (*spiffebundle.Bundle, error) {
	resp, err := c.bundle.GetFederatedBundle(ctx, &bundlev1.GetFederatedBundleRequest{TrustDomain: td.Name()})
	if err != nil {
		return nil, fmt.Errorf("spireapi: failed to get federated bundle for %q: %w", td, err)
	}
	b, err := bundleFromAPI(resp)
	if err != nil {
		return nil, err
	}
	if b.TrustDomain() != td {
		return nil, fmt.Errorf("%w: asked for the bundle of %q, got %q", ErrMalformedResponse, td, b.TrustDomain())
	}
	return b, nil
}

// GetX509Bundle returns the X.509 authorities of td, the server's own trust
// domain or a federated one.
func (c *Client) GetX509Bundle(ctx context.Context, td spiffeid.TrustDomain) (*x509bundle.Bundle, error) {
	b, err := c.bundleFor(ctx, td)
	if err != nil {
		return nil, err
	}
	return b.X509Bundle(), nil
}

// GetJWTBundle returns the JWT authorities of td, the server's own trust
// domain or a federated one.
func (c *Client) GetJWTBundle(ctx context.Context, td spiffeid.TrustDomain) (*jwtbundle.Bundle, error) {
	b, err := c.bundleFor(ctx, td)
	if err != nil {
		return nil, err
	}
	return b.JWTBundle(), nil
}

// bundleFor asks for the server's own bundle first (the common case, one
// call) and for a federated bundle when td is another trust domain.
func (c *Client) bundleFor(ctx context.Context, td spiffeid.TrustDomain) (*spiffebundle.Bundle, error) {
	if td.IsZero() {
		return nil, fmt.Errorf("spireapi: trust domain is missing")
	}
	own, err := c.GetBundle(ctx)
	if err != nil {
		return nil, err
	}
	if own.TrustDomain() == td {
		return own, nil
	}
	return c.GetFederatedBundle(ctx, td)
}

func bundleFromAPI(in *apitypes.Bundle) (*spiffebundle.Bundle, error) {
	if in == nil {
		return nil, fmt.Errorf("%w: bundle is missing", ErrMalformedResponse)
	}
	td, err := spiffeid.TrustDomainFromString(in.TrustDomain)
	if err != nil {
		return nil, fmt.Errorf("%w: bundle trust domain: %w", ErrMalformedResponse, err)
	}
	out := spiffebundle.New(td)
	for _, a := range in.X509Authorities {
		cert, err := x509.ParseCertificate(a.GetAsn1())
		if err != nil {
			return nil, fmt.Errorf("%w: bundle of %q: X.509 authority: %w", ErrMalformedResponse, td, err)
		}
		out.AddX509Authority(cert)
	}
	for _, a := range in.JwtAuthorities {
		if a.GetKeyId() == "" {
			return nil, fmt.Errorf("%w: bundle of %q: JWT authority without key ID", ErrMalformedResponse, td)
		}
		key, err := x509.ParsePKIXPublicKey(a.PublicKey)
		if err != nil {
			return nil, fmt.Errorf("%w: bundle of %q: JWT authority %q: %w", ErrMalformedResponse, td, a.KeyId, err)
		}
		if err := out.AddJWTAuthority(a.KeyId, crypto.PublicKey(key)); err != nil {
			return nil, fmt.Errorf("%w: bundle of %q: %w", ErrMalformedResponse, td, err)
		}
	}
	if in.RefreshHint > 0 {
		out.SetRefreshHint(time.Duration(in.RefreshHint) * time.Second)
	}
	if in.SequenceNumber > 0 {
		out.SetSequenceNumber(in.SequenceNumber)
	}
	return out, nil
}
