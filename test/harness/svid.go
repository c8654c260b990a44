package harness

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"math"
	"net/url"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	svidv1 "github.com/spiffe/spire-api-sdk/proto/spire/api/server/svid/v1"
)

// MintX509SVID has the server sign an X509-SVID for id over a new ECDSA
// P-256 key, valid for ttl (zero: the server's default), through the admin
// API's svid.v1 MintX509SVID. No entry and no Workload API are involved:
// it gives the test process an identity of its own, issued by the real
// server CA, for the client side of an mTLS listener under test. The answer
// is parsed as go-spiffe parses any X509-SVID (x509svid.ParseRaw: a SPIFFE
// leaf certifying the key), and its ID must be id.
func (s *SPIREServer) MintX509SVID(t testing.TB, id spiffeid.ID, ttl time.Duration) *x509svid.SVID {
	t.Helper()
	if ttl < 0 || ttl/time.Second > math.MaxInt32 {
		t.Fatalf("harness: mint X509-SVID %s: TTL %s out of range", id, ttl)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("harness: mint X509-SVID %s: generate key: %v", id, err)
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{URIs: []*url.URL{id.URL()}}, key)
	if err != nil {
		t.Fatalf("harness: mint X509-SVID %s: CSR: %v", id, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	resp, err := svidv1.NewSVIDClient(s.Conn(t)).MintX509SVID(ctx, &svidv1.MintX509SVIDRequest{
		Csr: csr, Ttl: int32(ttl / time.Second),
	})
	if err != nil {
		t.Fatalf("harness: mint X509-SVID %s: %v", id, err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatalf("harness: mint X509-SVID %s: encode key: %v", id, err)
	}
	svid, err := x509svid.ParseRaw(bytes.Join(resp.GetSvid().GetCertChain(), nil), keyDER)
	if err != nil {
		t.Fatalf("harness: mint X509-SVID %s: the server's answer: %v", id, err)
	}
	if svid.ID != id {
		t.Fatalf("harness: mint X509-SVID %s: the server signed %s", id, svid.ID)
	}
	return svid
}

// X509Bundle is the trust domain's X.509 authorities (BundlePEM) as a
// go-spiffe bundle source, to verify the trust domain's X509-SVIDs from
// outside the Workload API.
func (s *SPIREServer) X509Bundle(t testing.TB) *x509bundle.Bundle {
	t.Helper()
	b, err := x509bundle.Parse(s.trustDomain, s.BundlePEM(t))
	if err != nil {
		t.Fatalf("harness: X.509 bundle of %s: %v", s.trustDomain, err)
	}
	return b
}
