package server

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentid/agentid/pkg/server/config"
	"github.com/agentid/agentid/pkg/spireapi/spireapitest"
)

// writeCert writes a self-signed certificate for 127.0.0.1 and its key.
func writeCert(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "page.crt"), filepath.Join(dir, "page.key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// TestRunUserPage: with user_page configured, Run serves the page over
// HTTPS on its own listener, and a browser without a session is sent to
// sign in.
func TestRunUserPage(t *testing.T) {
	spire := spireapitest.New(t, runTD)
	cfg := runConfig(t, spire)
	dir := shortDir(t)
	cert, key := writeCert(t, dir)
	addr := freeAddr(t)
	cfg.UserPage = &config.UserPage{Listen: addr, URL: "https://" + addr, TLSCertFile: cert, TLSKeyFile: key,
		Issuer: "https://idp.invalid", ClientID: "agentid"}
	var logs syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg, testLog(&logs)) }()

	client := &http.Client{
		Transport:     &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       5 * time.Second,
	}
	var resp *http.Response
	waitFor(t, "the user page", func() bool {
		var err error
		resp, err = client.Get("https://" + addr + "/delegations")
		return err == nil
	})
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/login?next=%2Fdelegations" ||
		!strings.Contains(resp.Header.Get("Content-Security-Policy"), "frame-ancestors 'none'") {
		t.Fatalf("GET /delegations = %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	// Plain HTTP is not served.
	if resp, err := http.Get("http://" + addr + "/delegations"); err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("plain http: %d", resp.StatusCode)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v", err)
	}
}

func TestRunUserPageRefusesMissingFiles(t *testing.T) {
	spire := spireapitest.New(t, runTD)
	dir := shortDir(t)
	cert, key := writeCert(t, dir)
	for _, tt := range []struct {
		page *config.UserPage
		want string
	}{
		{&config.UserPage{TLSCertFile: filepath.Join(dir, "none.crt"), TLSKeyFile: key}, "user page: user_page.tls: stat "},
		{&config.UserPage{TLSCertFile: cert, TLSKeyFile: key, ClientSecretFile: filepath.Join(dir, "none")}, "user page: failed to read the client secret: open "},
	} {
		cfg := runConfig(t, spire)
		tt.page.Listen, tt.page.URL, tt.page.Issuer, tt.page.ClientID = freeAddr(t), "https://page.example", "https://idp.invalid", "agentid"
		cfg.UserPage = tt.page
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		err := Run(ctx, cfg, testLog(&syncBuffer{}))
		cancel()
		if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
			t.Errorf("Run = %v, want %q", err, tt.want)
		}
	}
}
