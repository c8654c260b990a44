package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/agentid/agentid/pkg/verify"
	"github.com/agentid/agentid/pkg/verify/extauthz"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"gopkg.in/yaml.v3"
)

// maxConfigSize bounds the configuration file.
const maxConfigSize = 1 << 20

// config is the YAML configuration file. Unknown keys are an error naming
// the key and its line.
type config struct {
	// Listen is the ext_authz gRPC address: "unix:///path" or "host:port".
	// Plaintext unless TLS is set: without TLS, put it on a unix socket or
	// loopback beside Envoy (CheckRequests carry users' delegated tokens).
	Listen string `yaml:"listen"`
	// TLS serves Listen over mTLS with this server's X509-SVID, admitting
	// only the listed Envoy proxies. Needs workload_api_socket.
	TLS tlsConfig `yaml:"tls"`
	// AdminListen serves /healthz, /readyz and /metrics over HTTP:
	// "unix:///path" or "host:port". Optional.
	AdminListen string `yaml:"admin_listen"`
	// WorkloadAPISocket is the SPIRE agent's Workload API
	// ("unix:///run/spire/agent.sock"): the JWT bundles, and the
	// X509-SVID used to reach agentid-server for revocations.
	WorkloadAPISocket string `yaml:"workload_api_socket"`
	// JWTBundles maps trust domains to JWKS files (SPIFFE bundle format),
	// instead of the Workload API's bundles. For tests and static setups.
	JWTBundles map[string]string `yaml:"jwt_bundles"`
	// TrustDomains whose agents may call. Required.
	TrustDomains []string `yaml:"trust_domains"`
	// Audiences this service accepts (its own SPIFFE ID or URL). Required.
	Audiences []string `yaml:"audiences"`
	// AllowPlainTokens accepts JWT-SVIDs without delegation claims.
	AllowPlainTokens bool `yaml:"allow_plain_tokens"`
	// ClockSkew on exp, nbf and iat. Default 1m.
	ClockSkew time.Duration `yaml:"clock_skew"`
	// CacheSize bounds the verified-token cache. Default 10000.
	CacheSize int `yaml:"cache_size"`
	// Revocation configures the watch on agentid-server. Required: set
	// disabled: true to run without it, deliberately.
	Revocation revocationConfig `yaml:"revocation"`
	// Rules decide on verified requests, in order. At least one.
	Rules []ruleConfig `yaml:"rules"`
	// LogLevel is debug, info, warn or error. Default info.
	LogLevel string `yaml:"log_level"`
	// LogFormat is text or json. Default text.
	LogFormat string `yaml:"log_format"`

	logLevel     slog.Level
	trustDomains []spiffeid.TrustDomain
}

type revocationConfig struct {
	// Address of agentid-server's mTLS listener.
	Address string `yaml:"address"`
	// ServerID is agentid-server's SPIFFE ID, checked on the connection.
	ServerID string `yaml:"server_id"`
	// MaxStaleness before failing closed. Default 30s.
	MaxStaleness time.Duration `yaml:"max_staleness"`
	// FailOpen answers from known revocations when the stream is stale,
	// instead of refusing every delegated token. Default false.
	FailOpen bool `yaml:"fail_open"`
	// Disabled runs without revocation checking: revoked delegations'
	// tokens are accepted until they expire.
	Disabled bool `yaml:"disabled"`

	serverID spiffeid.ID
}

// tlsConfig names the clients (Envoy sidecars, ingress gateways) allowed
// on the mTLS ext_authz listener. Setting either list turns mTLS on.
type tlsConfig struct {
	// ClientIDs are SPIFFE IDs admitted exactly.
	ClientIDs []string `yaml:"client_ids"`
	// ClientTrustDomains admit every X509-SVID of these trust domains: any
	// sidecar of the mesh.
	ClientTrustDomains []string `yaml:"client_trust_domains"`

	ids map[spiffeid.ID]bool
	tds map[spiffeid.TrustDomain]bool
}

// enabled reports whether the listener is mTLS.
func (t *tlsConfig) enabled() bool { return len(t.ClientIDs) > 0 || len(t.ClientTrustDomains) > 0 }

// authorize admits a client certificate's SPIFFE ID listed by ID or by
// trust domain.
func (t *tlsConfig) authorize(id spiffeid.ID) error {
	if t.ids[id] || t.tds[id.TrustDomain()] {
		return nil
	}
	return fmt.Errorf("extauthz: client %s is not in tls.client_ids or tls.client_trust_domains", id)
}

type ruleConfig struct {
	Name  string `yaml:"name"`
	Match string `yaml:"match"`
	Allow string `yaml:"allow"`
}

func loadConfig(path string) (*config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("failed to read config: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxConfigSize+1))
	if err != nil {
		return nil, fmt.Errorf("failed to read config: %w", err)
	}
	if len(b) > maxConfigSize {
		return nil, fmt.Errorf("config %s: larger than %d bytes", path, maxConfigSize)
	}
	cfg, err := parseConfig(b)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, nil
}

// parseConfig decodes strictly, then validates and fills defaults.
func parseConfig(b []byte) (*config, error) {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	var cfg config
	if err := dec.Decode(&cfg); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("empty configuration")
		}
		return nil, err
	}
	var extra any
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, errors.New("more than one YAML document")
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &cfg, nil
}

func (c *config) validate() error {
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	if c.Listen == "" {
		add("listen is required")
	}
	if len(c.TrustDomains) == 0 {
		add("trust_domains needs at least one trust domain")
	}
	for _, s := range c.TrustDomains {
		td, err := spiffeid.TrustDomainFromString(s)
		if err != nil {
			add("trust_domains: %q: %v", s, err)
			continue
		}
		c.trustDomains = append(c.trustDomains, td)
	}
	if len(c.Audiences) == 0 {
		add("audiences needs at least one audience")
	}
	switch {
	case c.WorkloadAPISocket == "" && len(c.JWTBundles) == 0:
		add("either workload_api_socket or jwt_bundles is required (the JWT bundles)")
	case c.WorkloadAPISocket != "" && len(c.JWTBundles) > 0:
		add("workload_api_socket and jwt_bundles exclude each other (both would be the JWT bundles)")
	}
	if c.TLS.enabled() {
		if c.WorkloadAPISocket == "" {
			add("tls: workload_api_socket is required (the X509-SVID and bundle of the mTLS listener)")
		}
		c.TLS.ids = map[spiffeid.ID]bool{}
		for _, s := range c.TLS.ClientIDs {
			id, err := spiffeid.FromString(s)
			if err != nil {
				add("tls: client_ids: %q: %v", s, err)
				continue
			}
			c.TLS.ids[id] = true
		}
		c.TLS.tds = map[spiffeid.TrustDomain]bool{}
		for _, s := range c.TLS.ClientTrustDomains {
			td, err := spiffeid.TrustDomainFromString(s)
			if err != nil {
				add("tls: client_trust_domains: %q: %v", s, err)
				continue
			}
			c.TLS.tds[td] = true
		}
	}
	for td := range c.JWTBundles {
		if _, err := spiffeid.TrustDomainFromString(td); err != nil {
			add("jwt_bundles: %q: %v", td, err)
		}
	}
	r := &c.Revocation
	switch {
	case r.Disabled && (r.Address != "" || r.ServerID != "" || r.FailOpen || r.MaxStaleness != 0):
		add("revocation: disabled excludes the other revocation settings")
	case r.Disabled:
	case r.Address == "" || r.ServerID == "":
		add("revocation: address and server_id are required (or disabled: true, to accept revoked delegations until they expire)")
	case c.WorkloadAPISocket == "":
		add("revocation: workload_api_socket is required (the X509-SVID for agentid-server)")
	default:
		id, err := spiffeid.FromString(r.ServerID)
		if err != nil {
			add("revocation: server_id %q: %v", r.ServerID, err)
		}
		r.serverID = id
	}
	if r.MaxStaleness < 0 {
		add("revocation: max_staleness must not be negative")
	}
	switch strings.ToLower(c.LogLevel) {
	case "", "info":
		c.logLevel = slog.LevelInfo
	case "debug":
		c.logLevel = slog.LevelDebug
	case "warn":
		c.logLevel = slog.LevelWarn
	case "error":
		c.logLevel = slog.LevelError
	default:
		add("log_level %q: want debug, info, warn or error", c.LogLevel)
	}
	if c.LogFormat != "" && c.LogFormat != "text" && c.LogFormat != "json" {
		add("log_format %q: want text or json", c.LogFormat)
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}

func (c *config) rules() []extauthz.Rule {
	out := make([]extauthz.Rule, len(c.Rules))
	for i, r := range c.Rules {
		out[i] = extauthz.Rule{Name: r.Name, Match: r.Match, Allow: r.Allow}
	}
	return out
}

// verifyConfig is the runtime verifier configuration, without the sources.
func (c *config) verifyConfig() verify.Config {
	return verify.Config{
		Audiences:        c.Audiences,
		TrustDomains:     c.trustDomains,
		AllowPlainTokens: c.AllowPlainTokens,
		// revocation: {disabled: true}; otherwise run sets the watcher.
		InsecureNoRevocation: c.Revocation.Disabled,
		ClockSkew:            c.ClockSkew,
		CacheSize:            c.CacheSize,
	}
}
