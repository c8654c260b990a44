package harness

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Discovery is a running SPIRE oidc-discovery-provider: the OpenID
// discovery document and JWKS of a server's JWT authorities, over plain
// HTTP on loopback, for verifiers that do not speak SPIFFE.
type Discovery struct {
	proc   *process
	url    string
	issuer string
}

// StartOIDCDiscovery starts oidc-discovery-provider reading srv's keys
// over its admin socket (polled every second), on the loopback port srv
// reserved for it, and waits until /keys holds at least one key.
func StartOIDCDiscovery(t testing.TB, srv *SPIREServer) *Discovery {
	t.Helper()
	bin := tool(t, toolSPIRE, "oidc-discovery-provider")
	dir := t.TempDir()
	d := &Discovery{
		url:    fmt.Sprintf("http://127.0.0.1:%d", srv.discoveryPort),
		issuer: srv.JWTIssuer(),
	}
	var b strings.Builder
	b.WriteString("log_level = \"debug\"\n")
	b.WriteString("domains = [\"localhost\", \"127.0.0.1\"]\n")
	fmt.Fprintf(&b, "insecure_addr = %s\n", hclString(fmt.Sprintf("127.0.0.1:%d", srv.discoveryPort)))
	b.WriteString("allow_insecure_scheme = true\n")
	// Both set explicitly: the issuer must equal the server's jwt_issuer,
	// and the JWKS URI must point here even when the issuer does not.
	fmt.Fprintf(&b, "jwt_issuer = %s\n", hclString(d.issuer))
	fmt.Fprintf(&b, "jwks_uri = %s\n", hclString(d.JWKSURL()))
	fmt.Fprintf(&b, "server_api {\n  address = %s\n  poll_interval = \"1s\"\n}\n", hclString("unix://"+srv.AdminSocket()))
	confPath := filepath.Join(dir, "oidc-discovery-provider.conf")
	if err := os.WriteFile(confPath, []byte(b.String()), 0o600); err != nil {
		t.Fatalf("harness: write discovery config: %v", err)
	}
	d.proc = newProcess(t, "oidc-discovery-provider", bin, dir, dir, "-config", confPath)
	d.proc.start(t)
	waitReady(t, d.proc, "oidc-discovery-provider keys", startTimeout, d.hasKeys)
	return d
}

func (d *Discovery) hasKeys() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, d.JWKSURL(), nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET /keys: %s", resp.Status)
	}
	var jwks struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &jwks); err != nil {
		return fmt.Errorf("GET /keys: %w", err)
	}
	if len(jwks.Keys) == 0 {
		return fmt.Errorf("GET /keys: no key yet")
	}
	return nil
}

// URL is the provider's base URL, http://127.0.0.1:<port>.
func (d *Discovery) URL() string { return d.url }

// Issuer is the issuer the discovery document announces, the server's
// jwt_issuer. By default it equals URL, so go-oidc's NewProvider(Issuer)
// works as is.
func (d *Discovery) Issuer() string { return d.issuer }

// JWKSURL is where the JWKS of the server's JWT authorities is served.
func (d *Discovery) JWKSURL() string { return d.url + "/keys" }

// Stop terminates the provider.
func (d *Discovery) Stop(t testing.TB) {
	t.Helper()
	d.proc.stop()
}
