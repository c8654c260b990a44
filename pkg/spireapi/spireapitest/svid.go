package spireapitest

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"math/big"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	svidv1 "github.com/spiffe/spire-api-sdk/proto/spire/api/server/svid/v1"
	"github.com/spiffe/spire-api-sdk/proto/spire/api/types"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// defaultX509SVIDTTL is SPIRE's default_x509_svid_ttl.
const defaultX509SVIDTTL = time.Hour

// now is the fake's clock for certificate validity and entry creation times.
// Certificates must be valid by the wall clock, so it is the real one.
var now = time.Now

type svidService struct {
	svidv1.UnimplementedSVIDServer
	s *Server
}

// MintX509SVID follows SPIRE's svid.v1 handler: the CSR must be well formed,
// self-signed, and carry exactly one URI SAN, a workload ID in the server's
// trust domain.
func (v *svidService) MintX509SVID(_ context.Context, req *svidv1.MintX509SVIDRequest) (*svidv1.MintX509SVIDResponse, error) {
	s := v.s
	s.mu.Lock()
	s.calls.MintX509SVID++
	s.mu.Unlock()

	if len(req.Csr) == 0 {
		return nil, status.Error(codes.InvalidArgument, "missing CSR")
	}
	csr, err := x509.ParseCertificateRequest(req.Csr)
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "malformed CSR: %v", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "failed to verify CSR signature: %v", err)
	}
	switch {
	case len(csr.URIs) == 0:
		return nil, status.Error(codes.InvalidArgument, "CSR URI SAN is required")
	case len(csr.URIs) > 1:
		return nil, status.Error(codes.InvalidArgument, "only one URI SAN is expected")
	}
	id, err := spiffeid.FromURI(csr.URIs[0])
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "CSR URI SAN is invalid: %v", err)
	}
	if _, err := s.memberID(&types.SPIFFEID{TrustDomain: id.TrustDomain().Name(), Path: id.Path()}, true); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "CSR URI SAN is invalid: %v", err)
	}

	ttl := time.Duration(req.Ttl) * time.Second
	if ttl <= 0 {
		ttl = defaultX509SVIDTTL
	}
	t := now()
	notAfter := t.Add(ttl)
	if notAfter.After(s.caCert.NotAfter) {
		notAfter = s.caCert.NotAfter
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, status.Errorf(codes.Internal, "failed to sign X509-SVID: %v", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      csr.Subject,
		URIs:         csr.URIs,
		NotBefore:    t.Add(-10 * time.Second),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment | x509.KeyUsageKeyAgreement,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, s.caCert, csr.PublicKey, s.caKey)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "failed to sign X509-SVID: %v", err)
	}
	return &svidv1.MintX509SVIDResponse{Svid: &types.X509SVID{
		Id:        &types.SPIFFEID{TrustDomain: id.TrustDomain().Name(), Path: id.Path()},
		CertChain: [][]byte{der},
		ExpiresAt: notAfter.Unix(),
	}}, nil
}

// newUUID returns a random version 4 UUID, as SPIRE picks entry ids.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return strings.Join([]string{h[0:8], h[8:12], h[12:16], h[16:20], h[20:32]}, "-")
}
