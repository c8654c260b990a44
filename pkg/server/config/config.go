package config

import (
	"bytes"
	"errors"
	"fmt"
	"github.com/agentid/agentid/pkg/agent"
	"io"
	"net"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/agentid/agentid/pkg/delegation"
	"github.com/agentid/agentid/pkg/policy"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"gopkg.in/yaml.v3"
)

// MaxFileSize bounds the configuration file.
const MaxFileSize = 1 << 20

// Defaults applied when a key is absent.
const (
	DefaultEntryPrefix       = "agentid-"
	DefaultSelectorType      = "aiagent"
	DefaultReconcileInterval = 10 * time.Second
	DefaultGroupsClaim       = "groups"
	DefaultMaxDepth          = 1
	DefaultX509SVIDTTL       = time.Hour
	DefaultJWTSVIDTTL        = 5 * time.Minute
	DefaultLogLevel          = "info"
	DefaultLogFormat         = "json"
	DefaultServerIDPath      = "/agentid-server"
)

// File is the configuration file as written. Every field maps to one key;
// see examples/server/agentid-server.yaml.
type File struct {
	// TrustDomain is the SPIRE trust domain, e.g. "example.org". Required.
	TrustDomain string    `yaml:"trust_domain"`
	Store       StoreFile `yaml:"store"`
	SPIRE       struct {
		// AdminSocket is spire-server's admin API socket (socket_path in its
		// config). Required: entries are reconciled through it.
		AdminSocket string `yaml:"admin_socket"`
		// WorkloadAPISocket, when set, is where the server gets its own
		// X509-SVID; otherwise it mints one over the admin socket.
		WorkloadAPISocket string `yaml:"workload_api_socket"`
		// ServerID is the server's own SPIFFE ID when it mints its SVID.
		// Default: spiffe://<trust domain>/agentid-server.
		ServerID string `yaml:"server_id"`
		// EntryPrefix marks the registration entries the server owns; it never
		// touches others. Default "agentid-".
		EntryPrefix string `yaml:"entry_prefix"`
		// SelectorType is the agentid-attestor's plugin name; every declared
		// agent must have at least one selector of it. Default "aiagent".
		SelectorType string `yaml:"selector_type"`
		// ReconcileInterval is how often entries are checked even without a
		// change. Default 10s.
		ReconcileInterval time.Duration `yaml:"reconcile_interval"`
	} `yaml:"spire"`
	Listen struct {
		// GRPC is the mTLS address for workloads (agents, front ends,
		// verifiers), e.g. "0.0.0.0:8443". Empty: no TCP listener.
		GRPC string `yaml:"grpc"`
		// LocalSocket is the unix socket for the composer plugin, the CLI and
		// admins, protected by file permissions. Required.
		LocalSocket string `yaml:"local_socket"`
		// HTTP serves /healthz, /readyz and /metrics. Empty: off.
		HTTP string `yaml:"http"`
	} `yaml:"listen"`
	OIDC struct {
		Issuers []Issuer `yaml:"issuers"`
	} `yaml:"oidc"`
	Policy struct {
		Rules []Rule `yaml:"rules"`
	} `yaml:"policy"`
	Agents []Agent `yaml:"agents"`
	Access struct {
		// Verifiers may call WatchDelegations over mTLS (services that check
		// revocations).
		Verifiers []string `yaml:"verifiers"`
		// Admins may, over mTLS, do what the local socket may: revoke any
		// delegation, read agents and audit.
		Admins []string `yaml:"admins"`
		// AuditReaders may read agents and the audit log over mTLS.
		AuditReaders []string `yaml:"audit_readers"`
		// UserClients act for the user at the keyboard (the user page, the
		// CLI over mTLS): with her fresh ID token they may revoke any of her
		// delegations. Other callers presenting a user's token revoke only
		// what they may revoke anyway (what they created, or hold as agent).
		UserClients []string `yaml:"user_clients"`
	} `yaml:"access"`
	// UserPage is the page where users sign in and see and revoke their
	// delegations (pkg/userpage), on its own HTTPS listener. Absent: no
	// page.
	UserPage *UserPageFile `yaml:"user_page"`
	// DangerouslyAllowUnpinnedAgents lets the server start when an agent is
	// declared only by selectors a copy of a file can satisfy (the
	// manifest's name, version, model, tools or hash): any process that can
	// read the agent's manifest then gets its identity. The server logs a
	// warning per such agent at every start. For a first try on a laptop,
	// never in production.
	DangerouslyAllowUnpinnedAgents bool `yaml:"dangerously_allow_unpinned_agents"`
	// OAuth makes the server an OAuth 2.0 authorization server (oauth.go).
	OAuth *OAuthFile `yaml:"oauth"`
	Log   struct {
		Level  string `yaml:"level"`  // debug, info, warn, error; default info
		Format string `yaml:"format"` // json or text; default json
	} `yaml:"log"`
}

// StoreFile is the store section.
type StoreFile struct {
	// Type is the backend: "bolt" (the default: one file, one replica)
	// or "postgres" (several replicas on one database).
	Type string `yaml:"type"`
	// Path of the bbolt file. Required with type bolt; its directory
	// must exist when the server starts.
	Path string `yaml:"path"`
	// Postgres configures type postgres.
	Postgres PostgresFile `yaml:"postgres"`
}

// PostgresFile is the store.postgres section. The connection string comes
// from dsn or from the environment variable dsn_env (one of them); it may
// not hold the password in the file: that goes in password_file (a mounted
// Secret), or in the variable's value.
type PostgresFile struct {
	// DSN is a libpq connection string or postgres:// URL without a
	// password, e.g. "host=db.example.com dbname=agentid user=agentid
	// sslmode=verify-full sslrootcert=/etc/agentid/pg-ca.pem".
	DSN string `yaml:"dsn"`
	// DSNEnv names the environment variable that holds the connection
	// string instead (from a Kubernetes Secret, say).
	DSNEnv string `yaml:"dsn_env"`
	// PasswordFile is read for the password at each new connection.
	PasswordFile string `yaml:"password_file"`
	// MaxConns bounds the replica's connection pool; 0 means pgstore's
	// default (16), else at least 3.
	MaxConns int `yaml:"max_conns"`
}

// Store backends.
const (
	StoreBolt     = "bolt"
	StorePostgres = "postgres"
)

// Postgres is the validated store.postgres section.
type Postgres struct {
	// ConnString is the connection string, read from dsn or dsn_env. It is
	// never logged.
	ConnString   string
	PasswordFile string
	MaxConns     int
}

// Issuer is one accepted OIDC issuer of user tokens.
type Issuer struct {
	// URL is the issuer exactly as in its tokens' iss claim.
	URL string `yaml:"url"`
	// Audiences lists accepted aud values; at least one.
	Audiences []string `yaml:"audiences"`
	// GroupsClaim names the claim holding the user's groups. Default "groups".
	GroupsClaim string `yaml:"groups_claim"`
	// RequireVerifiedEmail refuses tokens whose email_verified is not true.
	RequireVerifiedEmail bool `yaml:"require_verified_email"`
}

// CallerLocal in a rule's callers admits the local admin socket (the CLI on
// the host); the user's token and the rule still apply there.
const CallerLocal = policy.CallerLocal

// Rule is one policy rule: Name, When (a CEL condition), Scopes, MaxTTL,
// MaxDepth and Callers, as pkg/policy documents them.
type Rule struct {
	Name     string        `yaml:"name"`
	When     string        `yaml:"when"`
	Scopes   []string      `yaml:"scopes"`
	MaxTTL   time.Duration `yaml:"max_ttl"`
	MaxDepth int           `yaml:"max_depth"`
	Callers  []string      `yaml:"callers"`
}

// Agent is one declared agent: its identity in SPIRE and its capability
// ceiling in agentid. Removing a declaration disables the agent: the
// reconciler deletes its SPIRE entry and, at start-up, the server revokes
// every active delegation it holds (with their sub-delegations).
type Agent struct {
	Name string `yaml:"name"`
	// SPIFFEID is the agent's identity, e.g. spiffe://example.org/agent/gdpr.
	SPIFFEID string `yaml:"spiffe_id"`
	// ParentID is the entry's parent: usually a node (agent) SPIFFE ID.
	ParentID string `yaml:"parent_id"`
	// Selectors as "type:value", e.g. "aiagent:name:gdpr". At least one of the
	// attestor's type is required, so an attestor failure yields no identity.
	Selectors []string `yaml:"selectors"`
	// ScopeCeiling is every scope the agent may ever hold.
	ScopeCeiling []string `yaml:"scope_ceiling"`
	// SubAgents are the agents (SPIFFE IDs) it may sub-delegate to.
	SubAgents []string `yaml:"sub_agents"`
	// X509SVIDTTL and JWTSVIDTTL go into the SPIRE entry. A delegated token
	// lives at most JWTSVIDTTL, so this bounds revocation lag for verifiers
	// that do not watch.
	X509SVIDTTL time.Duration `yaml:"x509_svid_ttl"`
	JWTSVIDTTL  time.Duration `yaml:"jwt_svid_ttl"`
}

// Load reads, decodes, validates and defaults the file at path.
func Load(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("config: failed to read %s: %w", path, err)
	}
	cfg, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

// Parse decodes and validates a configuration from bytes.
func Parse(b []byte) (*Config, error) {
	if len(b) > MaxFileSize {
		return nil, fmt.Errorf("config: file larger than %d bytes", MaxFileSize)
	}
	var file File
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&file); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("config: file is empty")
		}
		return nil, fmt.Errorf("config: %w", err)
	}
	var extra any
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, errors.New("config: more than one YAML document")
	}
	return file.Build()
}

// buildPostgres validates the store section for its type and returns the
// PostgreSQL settings (nil for bolt).
func buildPostgres(typ string, f *File, fail func(key, format string, args ...any)) *Postgres {
	pg := f.Store.Postgres
	switch typ {
	case StoreBolt:
		if f.Store.Path == "" {
			fail("store.path", "is required")
		}
		if pg != (PostgresFile{}) {
			fail("store.postgres", "is set, but store.type is bolt (set store.type: postgres)")
		}
		return nil
	case StorePostgres:
	default:
		fail("store.type", "must be bolt or postgres")
		return nil
	}
	if f.Store.Path != "" {
		fail("store.path", "is a bbolt file; store.type postgres takes store.postgres")
	}
	c := &Postgres{PasswordFile: pg.PasswordFile, MaxConns: pg.MaxConns}
	switch {
	case pg.DSN == "" && pg.DSNEnv == "":
		fail("store.postgres", "dsn or dsn_env is required")
	case pg.DSN != "" && pg.DSNEnv != "":
		fail("store.postgres", "set dsn or dsn_env, not both")
	case pg.DSN != "":
		if holdsPassword(pg.DSN) {
			// The config file is readable by whoever reads the
			// deployment; the password is not.
			fail("store.postgres.dsn", "holds a password; put it in store.postgres.password_file, or the whole string in dsn_env")
		}
		c.ConnString = pg.DSN
	default:
		c.ConnString = os.Getenv(pg.DSNEnv)
		if c.ConnString == "" {
			fail("store.postgres.dsn_env", "environment variable %s is not set or empty", pg.DSNEnv)
		}
	}
	if pg.MaxConns < 0 || pg.MaxConns > 0 && pg.MaxConns < 3 {
		fail("store.postgres.max_conns", "must be at least 3 (one for writes, one to listen, one to read)")
	}
	return c
}

// holdsPassword reports whether a libpq connection string or URL written
// in the file carries a password: a password= key, or user:password@ in a
// URL.
func holdsPassword(dsn string) bool {
	lower := strings.ToLower(dsn)
	if strings.Contains(lower, "password") {
		return true
	}
	if rest, ok := strings.CutPrefix(lower, "postgres://"); ok || strings.HasPrefix(lower, "postgresql://") {
		if !ok {
			rest = strings.TrimPrefix(lower, "postgresql://")
		}
		if at := strings.LastIndex(rest, "@"); at >= 0 {
			userinfo := rest[:at]
			if slash := strings.Index(rest, "/"); slash >= 0 && slash < at {
				return false // the @ is past the authority
			}
			return strings.Contains(userinfo, ":")
		}
	}
	return false
}

// Config is the validated runtime configuration.
type Config struct {
	TrustDomain spiffeid.TrustDomain
	// StoreType is StoreBolt (StorePath) or StorePostgres (Postgres).
	StoreType         string
	StorePath         string
	Postgres          *Postgres
	AdminSocket       string
	WorkloadAPISocket string
	ServerID          spiffeid.ID
	EntryPrefix       string
	SelectorType      string
	ReconcileInterval time.Duration
	GRPCAddr          string
	LocalSocket       string
	HTTPAddr          string
	Issuers           []Issuer
	Rules             []Rule
	Agents            []agent.Agent
	Verifiers         []spiffeid.ID
	Admins            []spiffeid.ID
	AuditReaders      []spiffeid.ID
	UserClients       []spiffeid.ID
	LogLevel          string
	LogFormat         string
	// OAuth is the authorization server's listener and resources; nil
	// without an `oauth` section.
	OAuth *OAuth
	// UserPage is nil when the page is off.
	UserPage *UserPage
	// Warnings are what the server must log at start: agents let through by
	// DangerouslyAllowUnpinnedAgents.
	Warnings []string
}

// Build validates the file across fields, applies defaults and returns the
// runtime Config. Errors name the key, e.g. `agents[1].spiffe_id`.
func (f *File) Build() (*Config, error) {
	var errs []error
	fail := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{key}, args...)...))
	}
	c := &Config{
		StoreType:         or(f.Store.Type, StoreBolt),
		StorePath:         f.Store.Path,
		AdminSocket:       f.SPIRE.AdminSocket,
		WorkloadAPISocket: f.SPIRE.WorkloadAPISocket,
		EntryPrefix:       or(f.SPIRE.EntryPrefix, DefaultEntryPrefix),
		SelectorType:      or(f.SPIRE.SelectorType, DefaultSelectorType),
		ReconcileInterval: f.SPIRE.ReconcileInterval,
		GRPCAddr:          f.Listen.GRPC,
		LocalSocket:       f.Listen.LocalSocket,
		HTTPAddr:          f.Listen.HTTP,
		LogLevel:          or(f.Log.Level, DefaultLogLevel),
		LogFormat:         or(f.Log.Format, DefaultLogFormat),
	}
	if c.ReconcileInterval == 0 {
		c.ReconcileInterval = DefaultReconcileInterval
	}

	td, err := spiffeid.TrustDomainFromString(f.TrustDomain)
	switch {
	case f.TrustDomain == "":
		fail("trust_domain", "is required")
	case err != nil:
		fail("trust_domain", "%v", err)
	default:
		c.TrustDomain = td
	}
	c.Postgres = buildPostgres(c.StoreType, f, fail)
	if c.AdminSocket == "" {
		fail("spire.admin_socket", "is required")
	}
	if c.LocalSocket == "" {
		fail("listen.local_socket", "is required")
	}
	if c.ReconcileInterval < time.Second {
		fail("spire.reconcile_interval", "must be at least 1s")
	}
	for key, addr := range map[string]string{"listen.grpc": c.GRPCAddr, "listen.http": c.HTTPAddr} {
		if addr == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			fail(key, "%v", err)
		}
	}
	if !slices.Contains([]string{"debug", "info", "warn", "error"}, c.LogLevel) {
		fail("log.level", "must be one of debug, info, warn, error")
	}
	if c.LogFormat != "json" && c.LogFormat != "text" {
		fail("log.format", "must be json or text")
	}
	if !c.TrustDomain.IsZero() {
		if f.SPIRE.ServerID == "" {
			c.ServerID, _ = spiffeid.FromPath(c.TrustDomain, DefaultServerIDPath)
		} else {
			c.ServerID = parseMember("spire.server_id", f.SPIRE.ServerID, c.TrustDomain, fail)
		}
	}

	if len(f.OIDC.Issuers) == 0 {
		fail("oidc.issuers", "at least one issuer is required")
	}
	seenIssuer := map[string]bool{}
	for i, is := range f.OIDC.Issuers {
		key := fmt.Sprintf("oidc.issuers[%d]", i)
		if _, err := delegation.NewUser(is.URL, "probe", ""); err != nil || is.URL == "" {
			fail(key+".url", "must be an absolute https URL")
		}
		if seenIssuer[is.URL] {
			fail(key+".url", "duplicate issuer %q", is.URL)
		}
		seenIssuer[is.URL] = true
		if len(is.Audiences) == 0 {
			fail(key+".audiences", "at least one audience is required")
		}
		is.GroupsClaim = or(is.GroupsClaim, DefaultGroupsClaim)
		c.Issuers = append(c.Issuers, is)
	}

	if len(f.Policy.Rules) == 0 {
		fail("policy.rules", "at least one rule is required (the server denies by default)")
	}
	for i, r := range f.Policy.Rules {
		key := fmt.Sprintf("policy.rules[%d]", i)
		if r.Name == "" {
			fail(key+".name", "is required")
		}
		if strings.TrimSpace(r.When) == "" {
			fail(key+".when", "is required (write \"true\" to match everything)")
		}
		if r.MaxTTL <= 0 {
			fail(key+".max_ttl", "must be positive")
		}
		if r.MaxDepth == 0 {
			r.MaxDepth = DefaultMaxDepth
		}
		for j, caller := range r.Callers {
			if caller == CallerLocal {
				continue
			}
			parseMember(fmt.Sprintf("%s.callers[%d]", key, j), caller, c.TrustDomain, fail)
		}
		c.Rules = append(c.Rules, r)
	}

	seenName, seenID := map[string]bool{}, map[spiffeid.ID]bool{}
	for i, a := range f.Agents {
		key := fmt.Sprintf("agents[%d]", i)
		spec := agent.Agent{Name: a.Name, X509SVIDTTL: a.X509SVIDTTL, JWTSVIDTTL: a.JWTSVIDTTL}
		if !agent.ValidName(a.Name) {
			fail(key+".name", "must be 1-63 characters of a-z, 0-9 and '-'")
		}
		if seenName[a.Name] {
			fail(key+".name", "duplicate agent %q", a.Name)
		}
		seenName[a.Name] = true
		spec.SPIFFEID = parseMember(key+".spiffe_id", a.SPIFFEID, c.TrustDomain, fail)
		if !spec.SPIFFEID.IsZero() && seenID[spec.SPIFFEID] {
			fail(key+".spiffe_id", "duplicate SPIFFE ID %s", spec.SPIFFEID)
		}
		seenID[spec.SPIFFEID] = true
		spec.ParentID = parseMember(key+".parent_id", a.ParentID, c.TrustDomain, fail)
		hasOwnSelector := false
		for j, s := range a.Selectors {
			sel, err := agent.ParseSelector(s)
			if err != nil {
				fail(fmt.Sprintf("%s.selectors[%d]", key, j), "must be type:value")
				continue
			}
			hasOwnSelector = hasOwnSelector || sel.Type == c.SelectorType
			spec.Selectors = append(spec.Selectors, sel)
		}
		if !hasOwnSelector {
			fail(key+".selectors", "at least one %q selector is required, so that an attestor failure yields no identity", c.SelectorType)
		} else if !slices.ContainsFunc(spec.Selectors, func(s agent.Selector) bool { return Pins(c.SelectorType, s) }) {
			msg := fmt.Sprintf("%s.selectors: every selector can be satisfied by a process holding a copy of the agent's manifest; "+
				"add one the platform proves (%s) or a %s:signer: selector (a manifest signed and bound to what runs)",
				key, pinningSummary, c.SelectorType)
			if f.DangerouslyAllowUnpinnedAgents {
				c.Warnings = append(c.Warnings, "dangerously_allow_unpinned_agents: "+msg)
			} else {
				errs = append(errs, errors.New(msg+", or set dangerously_allow_unpinned_agents"))
			}
		}
		ceiling, err := delegation.ParseScopes(a.ScopeCeiling)
		if err != nil {
			fail(key+".scope_ceiling", "%v", err)
		} else if ceiling.IsEmpty() {
			fail(key+".scope_ceiling", "at least one scope is required")
		}
		spec.ScopeCeiling = ceiling
		for j, s := range a.SubAgents {
			if id := parseMember(fmt.Sprintf("%s.sub_agents[%d]", key, j), s, c.TrustDomain, fail); !id.IsZero() {
				spec.SubAgents = append(spec.SubAgents, id)
			}
		}
		if spec.X509SVIDTTL == 0 {
			spec.X509SVIDTTL = DefaultX509SVIDTTL
		}
		if spec.JWTSVIDTTL == 0 {
			spec.JWTSVIDTTL = DefaultJWTSVIDTTL
		}
		if spec.X509SVIDTTL < 0 || spec.JWTSVIDTTL < 0 {
			fail(key, "svid ttls must be positive")
		}
		c.Agents = append(c.Agents, spec)
	}
	for i, a := range c.Agents {
		for j, sub := range a.SubAgents {
			if !seenID[sub] {
				fail(fmt.Sprintf("agents[%d].sub_agents[%d]", i, j), "%s is not a declared agent", sub)
			}
		}
	}

	for key, list := range map[string]struct {
		in  []string
		out *[]spiffeid.ID
	}{
		"access.verifiers":     {f.Access.Verifiers, &c.Verifiers},
		"access.admins":        {f.Access.Admins, &c.Admins},
		"access.audit_readers": {f.Access.AuditReaders, &c.AuditReaders},
		"access.user_clients":  {f.Access.UserClients, &c.UserClients},
	} {
		for j, s := range list.in {
			if id := parseMember(fmt.Sprintf("%s[%d]", key, j), s, c.TrustDomain, fail); !id.IsZero() {
				*list.out = append(*list.out, id)
			}
		}
	}
	c.OAuth = f.OAuth.build(fail)
	c.UserPage = f.UserPage.build(c.Issuers, fail)
	if len(errs) > 0 {
		slices.SortFunc(errs, func(a, b error) int { return strings.Compare(a.Error(), b.Error()) })
		return nil, fmt.Errorf("config: %w", errors.Join(errs...))
	}
	return c, nil
}

// pinningSummary lists, for error messages, the selectors Pins accepts.
const pinningSummary = "unix:uid, unix:user, unix:gid, unix:group, unix:sha256, k8s:sa, k8s:ns, k8s:pod-uid, k8s:pod-image-id, " +
	"k8s:pod-image or k8s:container-image by digest, docker:image_id, <attestor>:exe-sha256"

// Pins reports whether a selector is one a process cannot earn by holding a
// copy of a file it can read: the kernel or the orchestrator proves it (uid,
// service account, namespace, pod, image digest), it is the digest of the
// executable that runs (a copy runs the same code), or it is the agentid
// attestor's signer, which the attestor gives only when the running process
// matches what the signed manifest binds (executable, image or script
// digest). attestor is the agentid attestor's selector type ("aiagent").
//
// Everything else the agentid attestor gives (name, version, model, tool,
// manifest-sha256) is read from the manifest, so any process that can read
// a copy of it earns them; selectors of other attestors are not known here
// and do not count.
func Pins(attestor string, s agent.Selector) bool {
	prefix := func(prefixes ...string) bool {
		for _, p := range prefixes {
			if strings.HasPrefix(s.Value, p) && len(s.Value) > len(p) {
				return true
			}
		}
		return false
	}
	switch s.Type {
	case attestor:
		return prefix("signer:", "exe-sha256:")
	case "unix":
		return prefix("uid:", "user:", "gid:", "group:", "sha256:")
	case "k8s":
		if prefix("pod-image:", "container-image:") {
			return strings.Contains(s.Value, "@sha256:")
		}
		return prefix("sa:", "ns:", "pod-uid:", "pod-image-id:")
	case "docker":
		return prefix("image_id:")
	}
	return false
}

// parseMember parses a SPIFFE ID that must belong to td (when td is known).
func parseMember(key, s string, td spiffeid.TrustDomain, fail func(string, string, ...any)) spiffeid.ID {
	if s == "" {
		fail(key, "is required")
		return spiffeid.ID{}
	}
	id, err := spiffeid.FromString(s)
	if err != nil {
		fail(key, "%v", err)
		return spiffeid.ID{}
	}
	if !td.IsZero() && !id.MemberOf(td) {
		fail(key, "%s is not in trust domain %s", id, td)
		return spiffeid.ID{}
	}
	return id
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
