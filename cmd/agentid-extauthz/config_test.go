package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/agentid/agentid/pkg/verify"
	"github.com/agentid/agentid/pkg/verify/extauthz"
	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

const validConfig = `
listen: unix:///run/agentid/extauthz.sock
admin_listen: 127.0.0.1:9192
workload_api_socket: unix:///run/spire/agent.sock
trust_domains: [example.org]
audiences: [spiffe://example.org/svc/crm]
clock_skew: 30s
revocation:
  address: agentid-server.spire:8443
  server_id: spiffe://example.org/agentid-server
  max_staleness: 45s
rules:
  - name: read
    match: 'request.method == "GET"'
    allow: '"campaigns:read" in scopes'
`

func TestParseConfig(t *testing.T) {
	cfg, err := parseConfig([]byte(validConfig))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != "unix:///run/agentid/extauthz.sock" || cfg.ClockSkew != 30*time.Second ||
		cfg.Revocation.MaxStaleness != 45*time.Second || cfg.Revocation.serverID.String() != "spiffe://example.org/agentid-server" ||
		len(cfg.rules()) != 1 || cfg.rules()[0].Allow != `"campaigns:read" in scopes` || cfg.trustDomains[0].Name() != "example.org" {
		t.Fatalf("config %+v", cfg)
	}
	vc := cfg.verifyConfig()
	if vc.Audiences[0] != "spiffe://example.org/svc/crm" || vc.ClockSkew != 30*time.Second {
		t.Fatalf("verify config %+v", vc)
	}
}

func TestParseConfigRejects(t *testing.T) {
	tests := []struct {
		name, yaml, want string
	}{
		{"unknown top-level key", validConfig + "audience: x\n",
			"yaml: unmarshal errors:\n  line 16: field audience not found in type main.config"},
		{"unknown nested key", `
listen: x
revocation:
  adress: y
`, "yaml: unmarshal errors:\n  line 4: field adress not found in type main.revocationConfig"},
		{"unknown rule key", `
rules:
  - name: a
    alow: "true"
`, "yaml: unmarshal errors:\n  line 4: field alow not found in type main.ruleConfig"},
		{"empty", "", "empty configuration"},
		{"two documents", validConfig + "---\nlisten: y\n", "more than one YAML document"},
		{"bad duration", "clock_skew: soon\n", "yaml: unmarshal errors:\n  line 1: cannot unmarshal !!str `soon` into time.Duration"},
		{"nothing set", "log_level: info\n", "listen is required; trust_domains needs at least one trust domain; audiences needs at least one audience; " +
			"either workload_api_socket or jwt_bundles is required (the JWT bundles); " +
			"revocation: address and server_id are required (or disabled: true, to accept revoked delegations until they expire)"},
		{"revocation without workload API", `
listen: x
trust_domains: [example.org]
audiences: [a]
jwt_bundles: {example.org: /b.jwks}
revocation: {address: a:1, server_id: spiffe://example.org/s}
`, "revocation: workload_api_socket is required (the X509-SVID for agentid-server)"},
		{"both bundle sources", `
listen: x
trust_domains: [example.org]
audiences: [a]
workload_api_socket: unix:///run/spire/agent.sock
jwt_bundles: {example.org: /b.jwks}
revocation: {disabled: true}
`, "workload_api_socket and jwt_bundles exclude each other (both would be the JWT bundles)"},
		{"tls without workload API", `
listen: x
trust_domains: [example.org]
audiences: [a]
jwt_bundles: {example.org: /b.jwks}
revocation: {disabled: true}
tls: {client_ids: [spiffe://example.org/ns/istio-system/sa/ingress]}
`, "tls: workload_api_socket is required (the X509-SVID and bundle of the mTLS listener)"},
		{"tls bad clients", `
listen: x
trust_domains: [example.org]
audiences: [a]
workload_api_socket: unix:///run/spire/agent.sock
revocation: {disabled: true}
tls: {client_ids: [example.org/ingress], client_trust_domains: [Example.org]}
`, `tls: client_ids: "example.org/ingress": scheme is missing or invalid; tls: client_trust_domains: "Example.org": trust domain characters are limited to lowercase letters, numbers, dots, dashes, and underscores`},
		{"disabled with settings", `
listen: x
trust_domains: [example.org]
audiences: [a]
jwt_bundles: {example.org: /b.jwks}
revocation: {disabled: true, fail_open: true}
`, "revocation: disabled excludes the other revocation settings"},
		{"bad trust domain and log settings", `
listen: x
trust_domains: [Example.org]
audiences: [a]
jwt_bundles: {example.org: /b.jwks}
revocation: {disabled: true}
log_level: loud
log_format: xml
`, `trust_domains: "Example.org": trust domain characters are limited to lowercase letters, numbers, dots, dashes, and underscores; log_level "loud": want debug, info, warn or error; log_format "xml": want text or json`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := parseConfig([]byte(tt.yaml)); err == nil || err.Error() != tt.want {
				t.Fatalf("err = %v\nwant %s", err, tt.want)
			}
		})
	}
}

func TestTLSAuthorize(t *testing.T) {
	cfg, err := parseConfig([]byte(validConfig + `tls:
  client_ids: [spiffe://example.org/ns/istio-system/sa/istio-ingressgateway]
  client_trust_domains: [mesh.example]
`))
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.TLS.enabled() {
		t.Fatal("tls not enabled")
	}
	tests := []struct {
		id, want string
	}{
		{"spiffe://example.org/ns/istio-system/sa/istio-ingressgateway", ""},
		{"spiffe://mesh.example/ns/shop/sa/crm", ""},
		{"spiffe://example.org/agent/market-analysis",
			"extauthz: client spiffe://example.org/agent/market-analysis is not in tls.client_ids or tls.client_trust_domains"},
		{"spiffe://evil.example/ns/istio-system/sa/istio-ingressgateway",
			"extauthz: client spiffe://evil.example/ns/istio-system/sa/istio-ingressgateway is not in tls.client_ids or tls.client_trust_domains"},
	}
	for _, tt := range tests {
		err := cfg.TLS.authorize(spiffeid.RequireFromString(tt.id))
		if (tt.want == "" && err != nil) || (tt.want != "" && (err == nil || err.Error() != tt.want)) {
			t.Errorf("authorize(%s) = %v, want %q", tt.id, err, tt.want)
		}
	}
	if plain, _ := parseConfig([]byte(validConfig)); plain.TLS.enabled() {
		t.Fatal("tls enabled without clients")
	}
}

func TestPlaintextOK(t *testing.T) {
	for addr, want := range map[string]bool{
		"unix:///run/agentid/extauthz.sock": true,
		"127.0.0.1:9191":                    true,
		"[::1]:9191":                        true,
		"localhost:9191":                    true,
		"0.0.0.0:9191":                      false,
		":9191":                             false,
		"10.0.0.5:9191":                     false,
		"bogus":                             false,
	} {
		if got := plaintextOK(addr); got != want {
			t.Errorf("plaintextOK(%q) = %v, want %v", addr, got, want)
		}
	}
}

func TestLoadConfig(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "extauthz.yaml")
	if err := os.WriteFile(path, []byte("listen: x\nbogus: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	want := "config " + path + ": yaml: unmarshal errors:\n  line 2: field bogus not found in type main.config"
	if _, err := loadConfig(path); err == nil || err.Error() != want {
		t.Fatalf("err = %v\nwant %s", err, want)
	}
	if _, err := loadConfig(filepath.Join(dir, "missing.yaml")); err == nil {
		t.Fatal("missing file accepted")
	}
}

// The example configuration shipped beside the command stays valid, rules
// included.
func TestExampleConfig(t *testing.T) {
	cfg, err := loadConfig("extauthz.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	vc := cfg.verifyConfig()
	vc.Bundles = jwtbundle.NewSet()
	if vc.InsecureNoRevocation {
		t.Fatal("the example runs without revocation checking")
	}
	vc.InsecureNoRevocation = true // run sets the watcher; not under test here
	v, err := verify.New(vc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := extauthz.New(extauthz.Config{Verifier: v, Rules: cfg.rules()}); err != nil {
		t.Fatal(err)
	}
}
