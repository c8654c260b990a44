package server

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/sirupsen/logrus"
	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/agentid/agentid/pkg/audit"
	"github.com/agentid/agentid/pkg/authserver"
	"github.com/agentid/agentid/pkg/claims"
	"github.com/agentid/agentid/pkg/delegation"
	"github.com/agentid/agentid/pkg/internal/testca"
	"github.com/agentid/agentid/pkg/server/config"
	"github.com/agentid/agentid/pkg/spireapi"
	"github.com/agentid/agentid/pkg/spireapi/spireapitest"
	"github.com/agentid/agentid/pkg/store/boltstore"
)

type fixedJWTBundle struct{ b *jwtbundle.Bundle }

func (f fixedJWTBundle) GetJWTBundle(_ context.Context, td spiffeid.TrustDomain) (*jwtbundle.Bundle, error) {
	return f.b, nil
}

// writeServingCert writes a self-signed web PKI certificate for 127.0.0.1
// and returns its pool.
func writeServingCert(t *testing.T, dir string, serial int64) *x509.CertPool {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	if err := os.WriteFile(filepath.Join(dir, "tls.crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tls.key"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return pool
}

// TestOAuthListener runs the OAuth listener as Run builds it (TLS from
// files, client certificates requested, keys in the store, the JWT bundle
// from SPIRE): metadata over HTTPS without a client certificate, a grant
// bound to the agent's X509-SVID, and the certificate files re-read.
func TestOAuthListener(t *testing.T) {
	dir := t.TempDir()
	pool := writeServingCert(t, dir, 1)
	td := spiffeid.RequireTrustDomainFromString("example.org")
	agentID := spiffeid.RequireFromString("spiffe://example.org/agent/a1")
	ca := testca.New(t, td)
	jwtKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	bundle := jwtbundle.New(td)
	if err := bundle.AddJWTAuthority("k1", &jwtKey.PublicKey); err != nil {
		t.Fatal(err)
	}

	st, err := boltstore.Open(filepath.Join(dir, "agentid.db"), boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	user, _ := delegation.NewUser("https://idp.example.com", "alice", "")
	d, err := delegation.NewRoot(delegation.RootParams{Agent: agentID, User: user, MaxDepth: 1,
		Scopes: delegation.MustParseScopes("a"), CreatedAt: time.Now(), ExpiresAt: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateDelegation(t.Context(), d, audit.Event{Type: audit.TypeDelegationCreated, Actor: "local"}); err != nil {
		t.Fatal(err)
	}

	cfg, err := config.Parse([]byte(`
trust_domain: example.org
store: {path: /tmp/x.db}
spire: {admin_socket: /tmp/api.sock}
listen: {local_socket: /tmp/agentid.sock}
oidc: {issuers: [{url: "https://idp.example.com", audiences: [agentid]}]}
policy: {rules: [{name: r, when: "true", scopes: [a], max_ttl: 1h}]}
oauth:
  listen: 127.0.0.1:0
  issuer: https://agentid.example.com
  tls: {cert_file: ` + filepath.Join(dir, "tls.crt") + `, key_file: ` + filepath.Join(dir, "tls.key") + `}
  resources: [{uri: "https://mcp.example.com/mcp", scopes: [a]}]
`))
	if err != nil {
		t.Fatal(err)
	}
	log := logrus.New()
	log.Out = io.Discard
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	o, err := newOAuthListener(ctx, cfg.OAuth, td, nil, st, fixedJWTBundle{bundle}, ca.Bundle(), log)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- o.serve() }()
	defer func() {
		_ = o.server.Shutdown(context.Background()) // done reports how Run ended
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	base := "https://" + o.listener.Addr().String()

	anon := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := anon.Get(base + "/.well-known/oauth-authorization-server")
	if err != nil {
		t.Fatal(err)
	}
	var md authserver.Metadata
	if err := json.NewDecoder(resp.Body).Decode(&md); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || md.Issuer != "https://agentid.example.com" || !md.TLSClientCertificateBoundAccessTokens {
		t.Fatalf("metadata %d %+v", resp.StatusCode, md)
	}

	svid := ca.SVID(t, agentID)
	clientCert := tls.Certificate{PrivateKey: svid.PrivateKey}
	for _, c := range svid.Certificates {
		clientCert.Certificate = append(clientCert.Certificate, c.Raw)
	}
	agent := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{clientCert}}}}
	c := claims.FromDelegation(d).Map()
	c["sub"], c["aud"], c["exp"] = agentID.String(), []string{"https://agentid.example.com"}, time.Now().Add(time.Minute).Unix()
	payload, _ := json.Marshal(c)
	signer, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jwtKey}, (&jose.SignerOptions{}).WithHeader("kid", "k1"))
	jws, _ := signer.Sign(payload)
	assertion, _ := jws.CompactSerialize()
	resp, err = agent.PostForm(base+authserver.TokenPath, url.Values{
		"grant_type": {authserver.GrantTypeJWTBearer}, "assertion": {assertion}, "resource": {"https://mcp.example.com/mcp"},
	})
	if err != nil {
		t.Fatal(err)
	}
	var tr struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tr); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || tr.AccessToken == "" {
		t.Fatalf("grant: %d", resp.StatusCode)
	}
	parts := strings.Split(tr.AccessToken, ".")
	body, _ := jose.ParseSignedCompact(tr.AccessToken, []jose.SignatureAlgorithm{jose.ES256})
	if len(parts) != 3 || !strings.Contains(string(body.UnsafePayloadWithoutVerification()), `"cnf":{"x5t#S256":`) {
		t.Fatalf("token not bound to the client certificate")
	}

}

func TestCertFilesReloaded(t *testing.T) {
	dir := t.TempDir()
	writeServingCert(t, dir, 1)
	now := time.Now()
	c := &certFiles{certFile: filepath.Join(dir, "tls.crt"), keyFile: filepath.Join(dir, "tls.key"), now: func() time.Time { return now }}
	first, err := c.get()
	if err != nil || first.Leaf.SerialNumber.Int64() != 1 {
		t.Fatalf("first: %v", err)
	}
	writeServingCert(t, dir, 2)
	if err := os.Chtimes(c.certFile, now.Add(time.Second), now.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if got, _ := c.get(); got != first {
		t.Fatal("files checked again within a second")
	}
	now = now.Add(time.Second)
	if got, err := c.get(); err != nil || got.Leaf.SerialNumber.Int64() != 2 {
		t.Fatalf("renewed certificate not loaded: %v", err)
	}
	if err := os.WriteFile(c.keyFile, []byte("half-written"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(c.keyFile, now.Add(2*time.Second), now.Add(2*time.Second)); err != nil {
		t.Fatal(err)
	}
	now = now.Add(2 * time.Second)
	if got, err := c.get(); err != nil || got.Leaf.SerialNumber.Int64() != 2 {
		t.Fatalf("a broken pair replaced the last good one: %v", err)
	}
}

// TestRunOAuth runs agentid-server with an `oauth` section, as the binary
// does: the listener serves metadata and the JWKS of keys Run put in the
// store, verifies assertions against the JWT bundle Run read from SPIRE, and
// binds the token to an X509-SVID that SPIRE minted (the X.509 bundle Run
// holds). An assertion signed by a key SPIRE does not publish is refused.
func TestRunOAuth(t *testing.T) {
	spire := spireapitest.New(t, runTD)
	cfg := runConfig(t, spire)
	dir := shortDir(t)
	pool := writeServingCert(t, dir, 1)
	const issuer, resource = "https://agentid.example.com", "https://mcp.example.com/mcp"
	cfg.OAuth = &config.OAuth{
		Addr: freeAddr(t), Issuer: issuer, CertFile: filepath.Join(dir, "tls.crt"), KeyFile: filepath.Join(dir, "tls.key"),
		MaxTokenTTL: 5 * time.Minute,
		Resources:   []config.OAuthResource{{URI: resource, Scopes: delegation.MustParseScopes("crm:read"), TokenTTL: time.Minute}},
	}

	// The delegation, written before Run opens the store (bbolt holds one
	// process's lock).
	st, err := boltstore.Open(cfg.StorePath, boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	user, _ := delegation.NewUser("https://idp.invalid", "alice", "")
	d, err := delegation.NewRoot(delegation.RootParams{Agent: runAgent, User: user, MaxDepth: 1,
		Scopes: delegation.MustParseScopes("crm:read"), CreatedAt: time.Now(), ExpiresAt: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateDelegation(t.Context(), d, audit.Event{Type: audit.TypeDelegationCreated, Actor: "local"}); err != nil {
		t.Fatal(err)
	}
	st.Close()

	var logs syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg, testLog(&logs)) }()

	base := "https://" + cfg.OAuth.Addr
	anon := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: 5 * time.Second}
	var md authserver.Metadata
	waitFor(t, "the OAuth metadata", func() bool {
		resp, err := anon.Get(base + "/.well-known/oauth-authorization-server")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		return resp.StatusCode == http.StatusOK && json.NewDecoder(resp.Body).Decode(&md) == nil
	})
	if md.Issuer != issuer || md.TokenEndpoint != issuer+authserver.TokenPath || !md.TLSClientCertificateBoundAccessTokens {
		t.Fatalf("metadata = %+v", md)
	}
	resp, err := anon.Get(base + authserver.JWKSPath)
	if err != nil {
		t.Fatal(err)
	}
	var jwks jose.JSONWebKeySet
	err = json.NewDecoder(resp.Body).Decode(&jwks)
	resp.Body.Close()
	if err != nil || len(jwks.Keys) == 0 {
		t.Fatalf("JWKS: %v, %d keys", err, len(jwks.Keys))
	}

	// The agent's client certificate, minted by SPIRE.
	client, err := spireapi.Dial(ctx, spire.SocketPath())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	svid, err := client.MintX509SVID(ctx, runAgent, key, 0)
	if err != nil {
		t.Fatal(err)
	}
	clientCert := tls.Certificate{PrivateKey: key, Leaf: svid.Certificates[0]}
	for _, c := range svid.Certificates {
		clientCert.Certificate = append(clientCert.Certificate, c.Raw)
	}
	agent := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{clientCert}}}, Timeout: 5 * time.Second}

	kid, _ := spire.JWTAuthority()
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	grant := func(signer crypto.Signer) (int, map[string]any) {
		t.Helper()
		c := claims.FromDelegation(d).Map()
		c["sub"], c["aud"], c["exp"] = runAgent.String(), []string{issuer}, time.Now().Add(time.Minute).Unix()
		payload, _ := json.Marshal(c)
		s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: signer}, (&jose.SignerOptions{}).WithHeader("kid", kid).WithType("JWT"))
		if err != nil {
			t.Fatal(err)
		}
		jws, err := s.Sign(payload)
		if err != nil {
			t.Fatal(err)
		}
		assertion, _ := jws.CompactSerialize()
		resp, err := agent.PostForm(base+authserver.TokenPath, url.Values{
			"grant_type": {authserver.GrantTypeJWTBearer}, "assertion": {assertion}, "resource": {resource},
		})
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, body
	}

	if code, body := grant(other); code != http.StatusBadRequest || body["error"] != authserver.ErrorInvalidGrant {
		t.Fatalf("assertion signed by a key SPIRE does not publish: %d %v, want 400 invalid_grant", code, body)
	}
	code, body := grant(spire.JWTSigner())
	token, _ := body["access_token"].(string)
	if code != http.StatusOK || token == "" {
		t.Fatalf("grant: %d %v", code, body)
	}
	jws, err := jose.ParseSignedCompact(token, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatal(err)
	}
	payload, err := jws.Verify(&jwks)
	if err != nil {
		t.Fatalf("access token does not verify with the listener's JWKS: %v", err)
	}
	at, err := claims.DecodeAccessToken(payload)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(svid.Certificates[0].Raw)
	if at.Audience != resource || at.User != user || at.Agent() != runAgent || at.CertThumbprint != base64.RawURLEncoding.EncodeToString(sum[:]) {
		t.Fatalf("access token claims = %+v", at)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run = %v, want nil when its context ends", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not stop")
	}
	if !strings.Contains(logs.String(), `"oauth":"`+cfg.OAuth.Addr+`"`) {
		t.Errorf("start-up log lacks the OAuth listener's address:\n%s", logs.String())
	}
}
