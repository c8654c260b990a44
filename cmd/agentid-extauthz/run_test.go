package main

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// TestRun starts the server as main does, on unix sockets, with a JWT bundle
// file, and checks health, a decision and the metrics.
func TestRun(t *testing.T) {
	dir := t.TempDir()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	td := spiffeid.RequireTrustDomainFromString("example.org")
	jwks, err := jwtbundle.FromJWTAuthorities(td, map[string]crypto.PublicKey{"k1": key.Public()}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	bundlePath := filepath.Join(dir, "example.org.jwks")
	if err := os.WriteFile(bundlePath, jwks, 0o600); err != nil {
		t.Fatal(err)
	}
	sock, adminSock := filepath.Join(dir, "extauthz.sock"), filepath.Join(dir, "admin.sock")
	cfg, err := parseConfig([]byte(`
listen: unix://` + sock + `
admin_listen: unix://` + adminSock + `
jwt_bundles: {example.org: ` + bundlePath + `}
trust_domains: [example.org]
audiences: [spiffe://example.org/svc/crm]
allow_plain_tokens: true
revocation: {disabled: true}
rules:
  - name: agents
    match: 'request.path.startsWith("/campaigns")'
    allow: 'agent.startsWith("spiffe://example.org/agent/")'
`))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- run(ctx, cfg, slog.New(slog.DiscardHandler)) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	}()

	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
	defer ccancel()
	watch, err := healthpb.NewHealthClient(conn).Watch(cctx, &healthpb.HealthCheckRequest{}, grpc.WaitForReady(true))
	if err != nil {
		t.Fatal(err)
	}
	for {
		res, err := watch.Recv()
		if err != nil {
			t.Fatalf("health: %v", err)
		}
		if res.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			break
		}
	}

	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: key, KeyID: "k1"}}, new(jose.SignerOptions).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	token, err := jwt.Signed(signer).Claims(map[string]any{
		"sub": "spiffe://example.org/agent/a", "aud": "spiffe://example.org/svc/crm", "exp": time.Now().Add(time.Minute).Unix(),
	}).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	authz := authv3.NewAuthorizationClient(conn)
	for _, tt := range []struct {
		peer, path string
		status     int32
	}{
		{"spiffe://example.org/agent/a", "/campaigns", 0},
		{"spiffe://example.org/agent/b", "/campaigns", 16}, // sub is not the peer: UNAUTHENTICATED
		{"spiffe://example.org/agent/a", "/admin", 7},      // no rule: PERMISSION_DENIED
	} {
		res, err := authz.Check(cctx, &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
			Source: &authv3.AttributeContext_Peer{Principal: tt.peer},
			Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
				Method: "GET", Path: tt.path, Headers: map[string]string{"authorization": "Bearer " + token},
			}},
		}})
		if err != nil || res.GetStatus().GetCode() != tt.status {
			t.Fatalf("%s %s: %v %v", tt.peer, tt.path, res.GetStatus(), err)
		}
	}

	admin := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", adminSock)
		},
	}}
	for path, want := range map[string]string{
		"/healthz": "ok",
		"/readyz":  "ok",
		"/metrics": `agentid_extauthz_checks_total{decision="deny",status="403"} 1`,
	} {
		res, err := admin.Get("http://admin" + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 200 || !strings.Contains(string(b), want) {
			t.Fatalf("%s: %d %s", path, res.StatusCode, b)
		}
	}
}

func TestRunRefusesMissingBundle(t *testing.T) {
	dir := t.TempDir()
	cfg, err := parseConfig([]byte(`
listen: unix://` + filepath.Join(dir, "s.sock") + `
jwt_bundles: {example.org: ` + filepath.Join(dir, "missing.jwks") + `}
trust_domains: [example.org]
audiences: [a]
revocation: {disabled: true}
rules: [{name: a, allow: 'true'}]
`))
	if err != nil {
		t.Fatal(err)
	}
	err = run(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err == nil || !strings.HasPrefix(err.Error(), "failed to load the JWT bundle of example.org: jwtbundle: unable to read JWT bundle") {
		t.Fatalf("err = %v", err)
	}
}
