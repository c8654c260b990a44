package config_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/agentid/agentid/pkg/server/config"
)

func TestExampleLoads(t *testing.T) {
	cfg, err := config.Load(filepath.Join("..", "..", "..", "examples", "server", "agentid-server.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.TrustDomain.String() != "example.org" || cfg.ServerID.String() != "spiffe://example.org/agentid-server" ||
		len(cfg.Agents) != 2 || len(cfg.Rules) != 1 || cfg.Rules[0].MaxTTL != time.Hour || cfg.Rules[0].MaxDepth != 2 {
		t.Fatalf("unexpected config: %+v", cfg)
	}
	// Defaults were applied to the second agent.
	if a := cfg.Agents[1]; a.JWTSVIDTTL != config.DefaultJWTSVIDTTL || a.X509SVIDTTL != config.DefaultX509SVIDTTL {
		t.Fatalf("defaults not applied: %+v", a)
	}
	if cfg.Issuers[0].GroupsClaim != "groups" || !cfg.Issuers[0].RequireVerifiedEmail {
		t.Fatalf("issuer: %+v", cfg.Issuers[0])
	}
	if o := cfg.OAuth; o == nil || o.Issuer != "https://agentid.example.com" || o.MaxTokenTTL != 5*time.Minute ||
		len(o.Resources) != 1 || o.Resources[0].Scopes.String() != "campaigns:read compliance:check" || o.CertFile == "" {
		t.Fatalf("oauth: %+v", cfg.OAuth)
	}
}

const oauthSection = `
oauth:
  listen: 127.0.0.1:9443
  issuer: https://agentid.example.com
  resources: [{uri: "https://mcp.example.com/mcp", scopes: [a]}]
`

func TestOAuthSection(t *testing.T) {
	cfg, err := config.Parse([]byte(minimal + oauthSection))
	if err != nil {
		t.Fatal(err)
	}
	if o := cfg.OAuth; o.Addr != "127.0.0.1:9443" || o.MaxTokenTTL != 5*time.Minute || o.CertFile != "" {
		t.Fatalf("oauth %+v", o)
	}
	if cfg, _ := config.Parse([]byte(minimal)); cfg.OAuth != nil {
		t.Fatal("oauth without a section")
	}
	for _, tt := range []struct{ from, to, want string }{
		{"listen: 127.0.0.1:9443", "listen: 0.0.0.0:9443",
			"config: oauth.tls: cert_file and key_file are required off loopback (or dangerously_serve_plaintext behind a TLS-terminating proxy)"},
		{"listen: 127.0.0.1:9443", "listen: 9443", "config: oauth.listen: address 9443: missing port in address"},
		{"  issuer: https://agentid.example.com\n", "", "config: oauth.issuer: is required"},
		{`uri: "https://mcp.example.com/mcp"`, `uri: "http://mcp.example.com/mcp"`, "config: oauth.resources[0].uri: resource URI must be https (http only on loopback)"},
		{`uri: "https://mcp.example.com/mcp"`, `uri: "https://mcp.example.com/mcp#x"`, "config: oauth.resources[0].uri: resource URI must not have a fragment"},
		{`scopes: [a]`, `scopes: []`, "config: oauth.resources[0].scopes: at least one scope is required"},
		{`scopes: [a]`, `scopes: [a], token_ttl: 10m`, "config: oauth.resources[0].token_ttl: must be 0..max_token_ttl (5m0s)"},
		{"listen: 127.0.0.1:9443", "listen: 127.0.0.1:9443\n  tls: {cert_file: /c}", "config: oauth.tls: cert_file and key_file go together"},
	} {
		from, to := tt.from, tt.to
		if !strings.Contains(oauthSection, from) {
			t.Fatalf("fixture lacks %q", from)
		}
		_, err := config.Parse([]byte(minimal + strings.Replace(oauthSection, from, to, 1)))
		if err == nil || err.Error() != tt.want {
			t.Fatalf("%s → %s: err = %v\nwant  %s", from, to, err, tt.want)
		}
	}
	plain := strings.Replace(oauthSection, "listen: 127.0.0.1:9443", "listen: 0.0.0.0:9443\n  dangerously_serve_plaintext: true", 1)
	if _, err := config.Parse([]byte(minimal + plain)); err != nil {
		t.Fatalf("plaintext behind a proxy: %v", err)
	}
}

const minimal = `
trust_domain: example.org
store: {path: /tmp/agentid.db}
spire: {admin_socket: /tmp/api.sock}
listen: {local_socket: /tmp/agentid.sock}
oidc: {issuers: [{url: "https://idp.example.com", audiences: [agentid]}]}
policy: {rules: [{name: r, when: "true", scopes: [a], max_ttl: 1h}]}
agents:
  - name: a1
    spiffe_id: spiffe://example.org/agent/a1
    parent_id: spiffe://example.org/node
    selectors: ["aiagent:name:a1", "unix:uid:1000"]
    scope_ceiling: [a]
`

func TestMinimalDefaults(t *testing.T) {
	cfg, err := config.Parse([]byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.EntryPrefix != "agentid-" || cfg.SelectorType != "aiagent" || cfg.ReconcileInterval != 10*time.Second ||
		cfg.Rules[0].MaxDepth != 1 || cfg.LogLevel != "info" || cfg.LogFormat != "json" {
		t.Fatalf("defaults: %+v", cfg)
	}
}

func TestParseRejects(t *testing.T) {
	tests := []struct {
		name     string
		from, to string
		want     string
	}{
		{"unknown key with line", "store: {path: /tmp/agentid.db}", "store: {path: /tmp/agentid.db, sync: false}",
			"config: yaml: unmarshal errors:\n  line 3: field sync not found in type config.StoreFile"},
		{"unknown top-level key", "trust_domain: example.org", "trust_domain: example.org\nlisten_grpc: x",
			"config: yaml: unmarshal errors:\n  line 3: field listen_grpc not found in type config.File"},
		{"no trust domain", "trust_domain: example.org", "", "config: trust_domain: is required"},
		{"bad trust domain", "trust_domain: example.org", "trust_domain: Example.org",
			"config: trust_domain: trust domain characters are limited to lowercase letters, numbers, dots, dashes, and underscores"},
		{"no store", "store: {path: /tmp/agentid.db}", "", "config: store.path: is required"},
		{"unknown store type", "store: {path: /tmp/agentid.db}", "store: {type: etcd, path: /tmp/agentid.db}", "config: store.type: must be bolt or postgres"},
		{"postgres section with bolt", "store: {path: /tmp/agentid.db}", "store: {path: /tmp/agentid.db, postgres: {dsn: host=db}}",
			"config: store.postgres: is set, but store.type is bolt (set store.type: postgres)"},
		{"postgres with a path", "store: {path: /tmp/agentid.db}", "store: {type: postgres, path: /tmp/agentid.db, postgres: {dsn: host=db}}",
			"config: store.path: is a bbolt file; store.type postgres takes store.postgres"},
		{"postgres without dsn", "store: {path: /tmp/agentid.db}", "store: {type: postgres}", "config: store.postgres: dsn or dsn_env is required"},
		{"postgres with both", "store: {path: /tmp/agentid.db}", "store: {type: postgres, postgres: {dsn: host=db, dsn_env: AGENTID_PG_DSN}}",
			"config: store.postgres: set dsn or dsn_env, not both"},
		{"password in dsn", "store: {path: /tmp/agentid.db}", `store: {type: postgres, postgres: {dsn: "host=db password=hunter2"}}`,
			"config: store.postgres.dsn: holds a password; put it in store.postgres.password_file, or the whole string in dsn_env"},
		{"password in url", "store: {path: /tmp/agentid.db}", `store: {type: postgres, postgres: {dsn: "postgres://agentid:hunter2@db/agentid"}}`,
			"config: store.postgres.dsn: holds a password; put it in store.postgres.password_file, or the whole string in dsn_env"},
		{"unset dsn_env", "store: {path: /tmp/agentid.db}", "store: {type: postgres, postgres: {dsn_env: AGENTID_TEST_UNSET_DSN}}",
			"config: store.postgres.dsn_env: environment variable AGENTID_TEST_UNSET_DSN is not set or empty"},
		{"two connections", "store: {path: /tmp/agentid.db}", "store: {type: postgres, postgres: {dsn: host=db, max_conns: 2}}",
			"config: store.postgres.max_conns: must be at least 3 (one for writes, one to listen, one to read)"},
		{"no issuers", `oidc: {issuers: [{url: "https://idp.example.com", audiences: [agentid]}]}`, "", "config: oidc.issuers: at least one issuer is required"},
		{"http issuer", `url: "https://idp.example.com"`, `url: "http://idp.example.com"`, "config: oidc.issuers[0].url: must be an absolute https URL"},
		{"no audience", `audiences: [agentid]`, `audiences: []`, "config: oidc.issuers[0].audiences: at least one audience is required"},
		{"no rules", `policy: {rules: [{name: r, when: "true", scopes: [a], max_ttl: 1h}]}`, "", "config: policy.rules: at least one rule is required (the server denies by default)"},
		{"rule without ttl", `max_ttl: 1h`, `max_depth: 2`, "config: policy.rules[0].max_ttl: must be positive"},
		{"foreign caller", `max_ttl: 1h`, `max_ttl: 1h, callers: ["spiffe://evil.org/x"]`, "config: policy.rules[0].callers[0]: spiffe://evil.org/x is not in trust domain example.org"},
		{"agent without attestor selector", `selectors: ["aiagent:name:a1", "unix:uid:1000"]`, `selectors: ["unix:uid:1000"]`,
			`config: agents[0].selectors: at least one "aiagent" selector is required, so that an attestor failure yields no identity`},
		{"malformed selector", `selectors: ["aiagent:name:a1", "unix:uid:1000"]`, `selectors: ["aiagent:name:a1", "unix:uid:1000", "nocolon"]`, "config: agents[0].selectors[2]: must be type:value"},
		{"bad agent name", `name: a1`, `name: A_1`, "config: agents[0].name: must be 1-63 characters of a-z, 0-9 and '-'"},
		{"bad ceiling", `scope_ceiling: [a]`, `scope_ceiling: ["a b"]`, "config: agents[0].scope_ceiling: delegation: invalid scope: scope 0: whitespace at byte 1"},
		{"undeclared sub-agent", `scope_ceiling: [a]`, "scope_ceiling: [a]\n    sub_agents: [spiffe://example.org/agent/ghost]",
			"config: agents[0].sub_agents[0]: spiffe://example.org/agent/ghost is not a declared agent"},
		{"bad listen", `listen: {local_socket: /tmp/agentid.sock}`, `listen: {local_socket: /tmp/agentid.sock, grpc: "8443"}`, "config: listen.grpc: address 8443: missing port in address"},
		{"bad log level", "trust_domain: example.org", "trust_domain: example.org\nlog: {level: loud}", "config: log.level: must be one of debug, info, warn, error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !strings.Contains(minimal, tt.from) {
				t.Fatalf("fixture lacks %q", tt.from)
			}
			_, err := config.Parse([]byte(strings.Replace(minimal, tt.from, tt.to, 1)))
			if err == nil || err.Error() != tt.want {
				t.Fatalf("err = %v\nwant  %s", err, tt.want)
			}
		})
	}
}

func TestPostgresStore(t *testing.T) {
	const dsn = "host=db.example.com dbname=agentid user=agentid sslmode=verify-full sslrootcert=/etc/agentid/pg-ca.pem"
	for _, tt := range []struct {
		name, store string
		want        config.Postgres
	}{
		{"dsn", `store: {type: postgres, postgres: {dsn: "` + dsn + `", password_file: /run/secrets/pg, max_conns: 8}}`,
			config.Postgres{ConnString: dsn, PasswordFile: "/run/secrets/pg", MaxConns: 8}},
		{"url without password", `store: {type: postgres, postgres: {dsn: "postgres://agentid@db.example.com/agentid?sslmode=verify-full"}}`,
			config.Postgres{ConnString: "postgres://agentid@db.example.com/agentid?sslmode=verify-full"}},
		{"dsn_env", "store: {type: postgres, postgres: {dsn_env: AGENTID_TEST_PG_DSN}}",
			config.Postgres{ConnString: "postgres://agentid:from-a-secret@db/agentid"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("AGENTID_TEST_PG_DSN", "postgres://agentid:from-a-secret@db/agentid")
			cfg, err := config.Parse([]byte(strings.Replace(minimal, "store: {path: /tmp/agentid.db}", tt.store, 1)))
			if err != nil {
				t.Fatal(err)
			}
			if cfg.StoreType != config.StorePostgres || cfg.StorePath != "" || cfg.Postgres == nil || *cfg.Postgres != tt.want {
				t.Fatalf("store = %q %q %+v, want postgres %+v", cfg.StoreType, cfg.StorePath, cfg.Postgres, tt.want)
			}
		})
	}
	cfg, err := config.Parse([]byte(minimal))
	if err != nil || cfg.StoreType != config.StoreBolt || cfg.Postgres != nil {
		t.Fatalf("default store = %+v, %v; want bolt", cfg, err)
	}
}

func TestParseReportsEveryProblem(t *testing.T) {
	_, err := config.Parse([]byte("log: {format: xml}\n"))
	want := "config: listen.local_socket: is required\n" +
		"log.format: must be json or text\n" +
		"oidc.issuers: at least one issuer is required\n" +
		"policy.rules: at least one rule is required (the server denies by default)\n" +
		"spire.admin_socket: is required\n" +
		"store.path: is required\n" +
		"trust_domain: is required"
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v\nwant %s", err, want)
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := config.Load(filepath.Join(dir, "missing.yaml")); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Fatalf("missing file: %v", err)
	}
	empty := filepath.Join(dir, "empty.yaml")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := config.Load(empty); err == nil || err.Error() != empty+": config: file is empty" {
		t.Fatalf("empty file: %v", err)
	}
	two := filepath.Join(dir, "two.yaml")
	if err := os.WriteFile(two, []byte(minimal+"\n---\nfoo: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := config.Load(two); err == nil || err.Error() != two+": config: more than one YAML document" {
		t.Fatalf("two documents: %v", err)
	}
}

// TestAgentsMustBePinned: a declaration every selector of which a copy of the
// agent's manifest can satisfy is refused (or, with the dangerous opt-out,
// let through with a warning); one selector the platform proves, an exe
// digest or a bound signer is enough.
func TestAgentsMustBePinned(t *testing.T) {
	const unpinned = "agents[0].selectors: every selector can be satisfied by a process holding a copy of the agent's manifest; " +
		"add one the platform proves (unix:uid, unix:user, unix:gid, unix:group, unix:sha256, k8s:sa, k8s:ns, k8s:pod-uid, k8s:pod-image-id, " +
		"k8s:pod-image or k8s:container-image by digest, docker:image_id, <attestor>:exe-sha256) or a aiagent:signer: selector " +
		"(a manifest signed and bound to what runs)"
	for _, tt := range []struct {
		name      string
		selectors string
		pinned    bool
	}{
		{"name only", `["aiagent:name:a1"]`, false},
		{"every manifest selector", `["aiagent:name:a1", "aiagent:version:1", "aiagent:model:a/b", "aiagent:tool:t", "aiagent:manifest-sha256:ab"]`, false},
		{"unknown attestor", `["aiagent:name:a1", "custom:uid:1000"]`, false},
		{"unix path", `["aiagent:name:a1", "unix:path:/usr/bin/agent"]`, false},
		{"k8s pod label", `["aiagent:name:a1", "k8s:pod-label:app:a1"]`, false},
		{"k8s image by tag", `["aiagent:name:a1", "k8s:container-image:ghcr.io/x/a1:1.0"]`, false},
		{"empty signer", `["aiagent:name:a1", "aiagent:signer:"]`, false},
		{"signer of another attestor type", `["aiagent:name:a1", "other:signer:k"]`, false},
		{"unix uid", `["aiagent:name:a1", "unix:uid:1000"]`, true},
		{"unix user", `["aiagent:name:a1", "unix:user:agent"]`, true},
		{"unix exe digest", `["aiagent:name:a1", "unix:sha256:ab"]`, true},
		{"k8s service account", `["aiagent:name:a1", "k8s:sa:a1"]`, true},
		{"k8s namespace", `["aiagent:name:a1", "k8s:ns:agents"]`, true},
		{"k8s image id", `["aiagent:name:a1", "k8s:pod-image-id:ghcr.io/x/a1@sha256:ab"]`, true},
		{"k8s image by digest", `["aiagent:name:a1", "k8s:container-image:ghcr.io/x/a1@sha256:ab"]`, true},
		{"docker image id", `["aiagent:name:a1", "docker:image_id:sha256:ab"]`, true},
		{"exe digest", `["aiagent:name:a1", "aiagent:exe-sha256:ab"]`, true},
		{"bound signer", `["aiagent:name:a1", "aiagent:signer:release-2026"]`, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			doc := strings.Replace(minimal, `selectors: ["aiagent:name:a1", "unix:uid:1000"]`, "selectors: "+tt.selectors, 1)
			cfg, err := config.Parse([]byte(doc))
			switch {
			case tt.pinned && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.pinned && len(cfg.Warnings) != 0:
				t.Fatalf("warnings %q", cfg.Warnings)
			case !tt.pinned && (err == nil || err.Error() != "config: "+unpinned+", or set dangerously_allow_unpinned_agents"):
				t.Fatalf("got %v, want the unpinned error", err)
			}
			cfg, err = config.Parse([]byte(doc + "dangerously_allow_unpinned_agents: true\n"))
			if err != nil {
				t.Fatal(err)
			}
			var want []string
			if !tt.pinned {
				want = []string{"dangerously_allow_unpinned_agents: " + unpinned}
			}
			if !slices.Equal(cfg.Warnings, want) {
				t.Fatalf("warnings %q, want %q", cfg.Warnings, want)
			}
		})
	}
}
