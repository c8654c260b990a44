package spireapitest

import (
	"context"
	"crypto/x509"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	bundlev1 "github.com/spiffe/spire-api-sdk/proto/spire/api/server/bundle/v1"
	"github.com/spiffe/spire-api-sdk/proto/spire/api/types"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

type bundleService struct {
	bundlev1.UnimplementedBundleServer
	s *Server
}

// GetBundle returns the fake's own bundle: its CA and its JWT key.
func (b *bundleService) GetBundle(context.Context, *bundlev1.GetBundleRequest) (*types.Bundle, error) {
	s := b.s
	s.mu.Lock()
	s.calls.GetBundle++
	s.mu.Unlock()

	jwtKey, err := x509.MarshalPKIXPublicKey(s.jwtKey)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "failed to convert bundle: %v", err)
	}
	return &types.Bundle{
		TrustDomain:     s.td.Name(),
		X509Authorities: []*types.X509Certificate{{Asn1: s.caCert.Raw}},
		JwtAuthorities:  []*types.JWTKey{{PublicKey: jwtKey, KeyId: s.jwtKeyID, ExpiresAt: s.caCert.NotAfter.Unix()}},
		RefreshHint:     300,
		SequenceNumber:  1,
	}, nil
}

// GetFederatedBundle follows SPIRE's handler: INVALID_ARGUMENT for a bad
// name or the server's own trust domain, NOT_FOUND for an unknown one.
func (b *bundleService) GetFederatedBundle(_ context.Context, req *bundlev1.GetFederatedBundleRequest) (*types.Bundle, error) {
	s := b.s
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls.GetFederatedBundle++

	td, err := spiffeid.TrustDomainFromString(req.TrustDomain)
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "trust domain argument is not valid: %v", err)
	}
	if td == s.td {
		return nil, status.Error(codes.InvalidArgument, "getting a federated bundle for the server's own trust domain is not allowed")
	}
	fb, ok := s.federated[td]
	if !ok {
		return nil, status.Error(codes.NotFound, "bundle not found")
	}
	return proto.Clone(fb).(*types.Bundle), nil
}
