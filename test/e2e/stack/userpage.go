package stack

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// writePageFiles writes the user page's self-signed certificate for
// 127.0.0.1 (the browser test runs Chromium with
// --ignore-certificate-errors) and a placeholder client secret, replaced by
// RegisterPageClient before anyone signs in.
func (s *Stack) writePageFiles(t testing.TB) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{
		"page.crt": pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		"page.key": pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}),
	} {
		if err := os.WriteFile(filepath.Join(s.dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// The secret is fixed here; RegisterPageClient creates the client
	// with it once the page's port, and so its redirect URI, is known.
	if err := os.WriteFile(filepath.Join(s.dir, "page-secret"), []byte(pageSecret), 0o600); err != nil {
		t.Fatal(err)
	}
}

// pageSecret is the page client's secret at Hydra (a test value).
const pageSecret = "page-client-secret-for-the-e2e-stack"

// RegisterPageClient creates the page's OAuth client at Hydra with the
// page's redirect URI; call it once after Start.
func (s *Stack) RegisterPageClient(t testing.TB) {
	t.Helper()
	s.Hydra.WebClientWithSecret(t, PageClientID, pageSecret, s.PageURL+"/callback")
}
