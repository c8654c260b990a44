package spireapi

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"fmt"
	"math"
	"net/url"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	svidv1 "github.com/spiffe/spire-api-sdk/proto/spire/api/server/svid/v1"
)

// MintX509SVID asks the SPIRE server to sign an X509-SVID for id over key's
// public key, valid for ttl (zero: the server's default X509-SVID TTL; SPIRE
// counts whole seconds). It is how a process beside the server, holding the
// admin socket but no Workload API, gets an identity of its own; it needs no
// registration entry, so only trusted callers may reach the socket.
//
// The private key never leaves the process: only a CSR signed with it is sent.
// The answer is checked before it is returned: the leaf must carry exactly id
// and key's public key.
func (c *Client) MintX509SVID(ctx context.Context, id spiffeid.ID, key crypto.Signer, ttl time.Duration) (*x509svid.SVID, error) {
	switch {
	case id.IsZero():
		return nil, fmt.Errorf("spireapi: SPIFFE ID is missing")
	case key == nil:
		return nil, fmt.Errorf("spireapi: private key is missing")
	case ttl < 0 || ttl/time.Second > math.MaxInt32:
		return nil, fmt.Errorf("spireapi: TTL %s is out of range", ttl)
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		URIs: []*url.URL{id.URL()},
	}, key)
	if err != nil {
		return nil, fmt.Errorf("spireapi: failed to create CSR: %w", err)
	}
	resp, err := c.svid.MintX509SVID(ctx, &svidv1.MintX509SVIDRequest{
		Csr: csr,
		Ttl: int32(ttl / time.Second),
	})
	if err != nil {
		return nil, fmt.Errorf("spireapi: failed to mint X509-SVID: %w", err)
	}
	if resp.GetSvid() == nil || len(resp.Svid.CertChain) == 0 {
		return nil, fmt.Errorf("%w: X509-SVID has no certificates", ErrMalformedResponse)
	}
	certs := make([]*x509.Certificate, 0, len(resp.Svid.CertChain))
	for _, der := range resp.Svid.CertChain {
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("%w: X509-SVID certificate: %w", ErrMalformedResponse, err)
		}
		certs = append(certs, cert)
	}
	got, err := x509svid.IDFromCert(certs[0])
	if err != nil {
		return nil, fmt.Errorf("%w: X509-SVID leaf: %w", ErrMalformedResponse, err)
	}
	if got != id {
		return nil, fmt.Errorf("%w: X509-SVID is for %q, not %q", ErrMalformedResponse, got, id)
	}
	pub, ok := certs[0].PublicKey.(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(key.Public()) {
		return nil, fmt.Errorf("%w: X509-SVID does not certify the key sent", ErrMalformedResponse)
	}
	return &x509svid.SVID{ID: id, Certificates: certs, PrivateKey: key}, nil
}
