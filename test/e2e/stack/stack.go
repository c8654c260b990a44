package stack

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/spire-api-sdk/proto/spire/api/types"

	"github.com/agentid/agentid/pkg/plugin/workloadattestor/aiagent"
	"github.com/agentid/agentid/test/harness"
)

// Names and identities of the trust domain the stack sets up. They are the
// story's cast: the e2e suite asserts on them and the demo prints them.
const (
	// TrustDomain is the harness's trust domain.
	TrustDomain = harness.DefaultTrustDomain
	// SignerKeyID is the release key that signs every manifest; entries
	// require aiagent:signer:<SignerKeyID>.
	SignerKeyID = "release-e2e"
	// UserAudience is the OAuth2 client the users log in to and the
	// audience agentid-server accepts in their ID tokens.
	UserAudience = harness.DefaultClientID
	// DefaultMaxStaleness is the composer's max_staleness in the stack:
	// above agentid-server's heartbeat gap (5 s) with room for a loaded
	// machine, short enough that a test sees the composer fail closed soon
	// after agentid-server dies.
	DefaultMaxStaleness = 12 * time.Second
)

// Declared agents (agentid-server's agents block) and the service.
var (
	// Orchestrator is the Go example agent: the user delegates to it.
	Orchestrator = spiffeid.RequireFromString("spiffe://example.org/agent/orchestrator")
	// Analyst is the orchestrator's only allowed sub-agent.
	Analyst = spiffeid.RequireFromString("spiffe://example.org/agent/market-analysis")
	// Research is the Python example agent, attested through its sidecar.
	Research = spiffeid.RequireFromString("spiffe://example.org/agent/research-assistant")
	// Newsletter is a declared agent with no business in the orchestrator's
	// delegations: the suite's would-be thief.
	Newsletter = spiffeid.RequireFromString("spiffe://example.org/agent/newsletter")
	// ServiceID is the example service's SPIFFE ID and the audience of the
	// tokens sent to it.
	ServiceID = spiffeid.RequireFromString("spiffe://example.org/svc/crm")
	// ServerID is agentid-server's SPIFFE ID (minted over the admin socket).
	ServerID = spiffeid.RequireFromString("spiffe://example.org/agentid-server")
	// ExtAuthzID is agentid-extauthz's SPIFFE ID (StartExtAuthz): the
	// ext_authz server an Envoy in front of the service would ask. Like the
	// service, it is a verifier that may watch revocations.
	ExtAuthzID = spiffeid.RequireFromString("spiffe://example.org/svc/crm-extauthz")
)

// AgentSpec is one declared agent as the stack writes it into
// agentid-server's configuration and into a signed manifest.
type AgentSpec struct {
	// Name is the agent's declared name and its manifest's name.
	Name string
	ID   spiffeid.ID
	// Ceiling is the agent's scope_ceiling.
	Ceiling []string
	// SubAgents are the agents it may sub-delegate to.
	SubAgents []spiffeid.ID
	// Model is the manifest's model, "provider/name".
	Model string
}

// Agents is the agents block, in order.
var Agents = []AgentSpec{
	{Name: "orchestrator", ID: Orchestrator, Ceiling: []string{"campaigns:read", "campaigns:write", "compliance:check"},
		SubAgents: []spiffeid.ID{Analyst}, Model: "anthropic/claude-sonnet-4"},
	{Name: "market-analysis", ID: Analyst, Ceiling: []string{"campaigns:read", "campaigns:write", "compliance:check"}, Model: "openai/gpt-4.1"},
	{Name: "research-assistant", ID: Research, Ceiling: []string{"campaigns:read", "web:search"}, Model: "meta/llama-3.1-8b"},
	{Name: "newsletter", ID: Newsletter, Ceiling: []string{"campaigns:read"}, Model: "mistral/mistral-small"},
}

// serviceManifestName is the manifest name the service is attested by.
// Every process here runs as the same uid, so unix:uid cannot tell the
// service from the agents; a signed manifest can.
const serviceManifestName = "crm-service"

// extAuthzManifestName is the manifest name agentid-extauthz is attested
// by, for the same reason.
const extAuthzManifestName = "crm-extauthz"

// Options configure Start.
type Options struct {
	// MaxStaleness is the composer's max_staleness; zero gives
	// DefaultMaxStaleness.
	MaxStaleness time.Duration
	// Progress receives one line per step of the start-up, with its
	// timing. Nil sends them to t.Logf.
	Progress func(format string, args ...any)
	// UserPage serves agentid-server's user page (PageURL) with a
	// self-signed certificate, and makes Hydra's login and consent a web
	// app a browser fills in, knowing WebUsers.
	UserPage bool
}

// PageClientID is the user page's OAuth client at Hydra; agentid-server
// accepts it as an audience of user tokens.
const PageClientID = "agentid-page"

// WebUsers are the people who can sign in through the login app
// (Options.UserPage): alice and bob in marketing, carol an admin.
var WebUsers = map[string]harness.WebUser{
	"alice": {Password: "alice-pw", Email: "alice@example.com", Groups: []string{"marketing", "eu"}},
	"bob":   {Password: "bob-pw", Email: "bob@example.com", Groups: []string{"marketing"}},
	"carol": {Password: "carol-pw", Email: "carol@example.com", Groups: []string{"agentid-admins"}},
}

// Stack is the running trust domain: spire-server with agentid-composer,
// spire-agent with agentid-attestor, SPIRE's oidc-discovery-provider,
// agentid-server, Hydra as the users' OpenID provider and the example
// service. Everything stops when the test (or the demo) ends.
type Stack struct {
	// SPIRE is spire-server, its admin socket agentid-server's way in.
	SPIRE *harness.SPIREServer
	// Agent is the one spire-agent (node), parent of every entry; its
	// Workload API serves every process the stack attests.
	Agent *harness.SPIREAgent
	// Discovery serves SPIRE's JWKS to verifiers outside SPIFFE.
	Discovery *harness.Discovery
	// Hydra issues the users' ID tokens (Login).
	Hydra *harness.Hydra
	// Server is agentid-server; Kill and Start it to crash and restart it.
	Server *harness.Program

	// ServerAddr is agentid-server's mTLS listener (host:port).
	ServerAddr string
	// LocalSocket is agentid-server's local unix socket (the CLI's and the
	// composer's).
	LocalSocket string
	// HTTPAddr serves /healthz, /readyz and /metrics.
	HTTPAddr string
	// StorePath is agentid-server's bbolt file.
	StorePath string

	// PageURL is the user page's base URL (Options.UserPage), https on
	// loopback with a self-signed certificate.
	PageURL  string
	pageAddr string

	// Service is the example service (examples/service), attested by its
	// signed manifest as ServiceID, answering GET /whoami on ServiceAddr.
	Service     *harness.Program
	ServiceAddr string

	bins      map[string]string
	dir       string
	manifests map[string]string // name → manifest path
	boundExes []string          // SHA-256 of workloadPrograms, bound by every manifest
	signer    ed25519.PrivateKey
	progress  func(format string, args ...any)
}

// programs are what the stack builds, by Bin name.
var programs = map[string]string{
	"agentid-server":   "./cmd/agentid-server",
	"agentid":          "./cmd/agentid",
	"agentid-composer": "./cmd/agentid-composer",
	"agentid-attestor": "./cmd/agentid-attestor",
	"probe":            "./test/e2e/internal/probe",
	"service":          "./examples/service",
	"go-agent":         "./examples/go-agent",
	"agentid-sidecar":  "./cmd/agentid-sidecar",
	"agentid-extauthz": "./cmd/agentid-extauthz",
}

// Start builds the project's programs and brings the stack up in the order
// its parts depend on each other:
//
//  1. spire-server, with agentid-composer pointed at agentid-server's local
//     socket, which does not exist yet: the composer starts anyway and fails
//     delegated tokens closed until it can follow the server;
//  2. spire-agent with agentid-attestor trusting the release key, whose
//     SPIFFE ID becomes every agent entry's parent;
//  3. oidc-discovery-provider and Hydra;
//  4. agentid-server (its SVID minted over the admin socket), which
//     reconciles the declared agents into SPIRE entries;
//  5. the example service, once agentid-server can serve its revocation
//     watch.
//
// It returns once the service listens; the agents' entries may still be on
// their way (WaitForEntries).
func Start(t testing.TB, opts Options) *Stack {
	t.Helper()
	if opts.MaxStaleness == 0 {
		opts.MaxStaleness = DefaultMaxStaleness
	}
	s := &Stack{dir: t.TempDir(), manifests: map[string]string{}, progress: opts.Progress}
	if s.progress == nil {
		s.progress = t.Logf
	}

	step := time.Now()
	s.bins = Build(t, programs)
	s.progress("built %d programs (agentid's, the examples, the probe) in %s", len(programs), since(step))

	// Binaries before anything starts: a first build takes minutes and
	// would otherwise eat into a readiness deadline.
	step = time.Now()
	s.progress("checking the SPIRE and Hydra builds (the first run builds them from the Go module proxy: several minutes)")
	harness.Binaries(t)
	s.progress("SPIRE and Hydra binaries ready in %s", since(step))

	s.writeManifests(t)

	sockDir, err := os.MkdirTemp("", "aid")
	if err != nil {
		t.Fatalf("stack: make socket dir: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	s.LocalSocket = filepath.Join(sockDir, "agentid.sock")
	s.StorePath = filepath.Join(s.dir, "agentid.db")

	step = time.Now()
	s.SPIRE = harness.StartSPIREServer(t, harness.ServerOptions{
		CredentialComposer: &harness.ExternalPlugin{
			Name: "agentid", Cmd: s.bins["agentid-composer"],
			Data: fmt.Sprintf("agentid_socket_path = %s\nmax_staleness = %s",
				strconv.Quote(s.LocalSocket), strconv.Quote(opts.MaxStaleness.String())),
		},
		// Its Prometheus sink carries what agentid-composer reports through
		// SPIRE's metrics host service (step 10 scrapes it).
		Prometheus: true,
	})
	s.progress("spire-server (trust domain %s, agentid-composer loaded) healthy in %s", TrustDomain, since(step))

	step = time.Now()
	s.Agent = harness.StartSPIREAgent(t, s.SPIRE, harness.AgentOptions{
		WorkloadAttestor: &harness.ExternalPlugin{
			Name: "aiagent", Cmd: s.bins["agentid-attestor"],
			Data: fmt.Sprintf("signing_keys = {\n  %s = %s\n}", strconv.Quote(SignerKeyID), strconv.Quote(s.pubKeyPath())),
		},
	})
	s.progress("spire-agent (agentid-attestor trusting key %q) serving the Workload API in %s", SignerKeyID, since(step))

	step = time.Now()
	s.Discovery = harness.StartOIDCDiscovery(t, s.SPIRE)
	s.progress("oidc-discovery-provider serving SPIRE's JWKS at %s in %s", s.Discovery.JWKSURL(), since(step))

	step = time.Now()
	hopts := harness.HydraOptions{}
	if opts.UserPage {
		hopts.Users = WebUsers
	}
	s.Hydra = harness.StartHydra(t, hopts)
	s.progress("Ory Hydra (the users' OpenID provider) serving %s in %s", s.Hydra.IssuerURL(), since(step))

	// The service is no declared agent: its entry is the operator's own,
	// selected by its signed manifest.
	s.SPIRE.CreateEntry(t, harness.Entry{
		ID:       "e2e-service-crm",
		SPIFFEID: ServiceID,
		ParentID: s.Agent.ID(),
		Selectors: []string{
			"aiagent:name:" + serviceManifestName,
			"aiagent:signer:" + SignerKeyID,
		},
	})
	// So is agentid-extauthz's, by its own manifest: it needs an X509-SVID
	// to watch revocations even when no test starts it.
	s.SPIRE.CreateEntry(t, harness.Entry{
		ID:       "e2e-extauthz",
		SPIFFEID: ExtAuthzID,
		ParentID: s.Agent.ID(),
		Selectors: []string{
			"aiagent:name:" + extAuthzManifestName,
			"aiagent:signer:" + SignerKeyID,
		},
	})

	step = time.Now()
	conf := filepath.Join(s.dir, "agentid-server.yaml")
	nports := 2
	if opts.UserPage {
		nports = 3
		s.writePageFiles(t)
	}
	s.Server, _ = harness.StartProgramOnPorts(t, nports, "agentid-server /readyz", serverReadyTimeout,
		func(ports []int) (harness.ProgramOptions, func() error) {
			s.ServerAddr = "127.0.0.1:" + strconv.Itoa(ports[0])
			s.HTTPAddr = "127.0.0.1:" + strconv.Itoa(ports[1])
			if opts.UserPage {
				s.pageAddr = "127.0.0.1:" + strconv.Itoa(ports[2])
				s.PageURL = "https://" + s.pageAddr
			}
			if err := os.WriteFile(conf, []byte(s.serverConfig()), 0o600); err != nil {
				t.Fatalf("stack: write agentid-server config: %v", err)
			}
			return harness.ProgramOptions{
				Name: "agentid-server", Path: s.bins["agentid-server"], Args: []string{"-config", conf}, Dir: s.dir,
			}, s.serverReady
		})
	s.progress("agentid-server ready (mTLS %s, local socket, %d agents declared) in %s", s.ServerAddr, len(Agents), since(step))
	s.waitComposerReady(t)
	s.progress("agentid-composer following agentid-server's delegations %s after agentid-server started", since(step))

	step = time.Now()
	s.startService(t)
	s.progress("example service %s listening on %s, following revocations, in %s", ServiceID, s.ServiceAddr, since(step))
	return s
}

// serverReadyTimeout bounds agentid-server's start and restarts.
const serverReadyTimeout = 60 * time.Second

// WaitServerReady waits until agentid-server answers /readyz (store open,
// SVID held): after a restart (Start waits by itself).
func (s *Stack) WaitServerReady(t testing.TB) {
	t.Helper()
	s.Server.WaitReady(t, "agentid-server /readyz", serverReadyTimeout, s.serverReady)
}

// serverReady asks agentid-server's /readyz once.
func (s *Stack) serverReady() error { return readyz(s.HTTPAddr) }

// readyz asks the /readyz of the HTTP listener at addr once, bounded.
func readyz(addr string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/readyz", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("/readyz: %s", resp.Status)
	}
	return nil
}

// composerReady is what agentid-composer logs, through spire-server's log,
// when its replica has the first snapshot (its README's Logs table).
const composerReady = `msg="Delegation replica ready"`

// waitComposerReady waits for the composer's replica: it started before
// agentid-server and reconnects with a backoff, so it may follow the server
// a second or two after the server is ready, and until then every
// delegated token fails (not ready) or, worse for a test, races the first
// delegation (unknown).
func (s *Stack) waitComposerReady(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, err := os.ReadFile(s.SPIRE.LogPath())
		if err == nil && bytes.Contains(b, []byte(composerReady)) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("stack: agentid-composer did not log %s within 30s of agentid-server's start (spire-server log: %s)", composerReady, s.SPIRE.LogPath())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Bin is the path of a program the stack built: "agentid-server",
// "agentid", "agentid-composer", "agentid-attestor", "agentid-sidecar",
// "agentid-extauthz", "service", "go-agent" or "probe".
func (s *Stack) Bin(t testing.TB, name string) string {
	t.Helper()
	p, ok := s.bins[name]
	if !ok {
		t.Fatalf("stack: program %q was not built", name)
	}
	return p
}

// Dir is the stack's scratch directory.
func (s *Stack) Dir() string { return s.dir }

// serverConfig is agentid-server's configuration: the cast above, a
// policy that lets marketing users delegate to each agent, and the service
// as a verifier that may watch revocations.
func (s *Stack) serverConfig() string {
	var b strings.Builder
	q := strconv.Quote
	fmt.Fprintf(&b, "trust_domain: %s\n", TrustDomain)
	fmt.Fprintf(&b, "store:\n  path: %s\n", q(s.StorePath))
	fmt.Fprintf(&b, "spire:\n  admin_socket: %s\n  server_id: %s\n  reconcile_interval: 2s\n", q(s.SPIRE.AdminSocket()), q(ServerID.String()))
	fmt.Fprintf(&b, "listen:\n  grpc: %s\n  local_socket: %s\n  http: %s\n", q(s.ServerAddr), q(s.LocalSocket), q(s.HTTPAddr))
	fmt.Fprintf(&b, "oidc:\n  issuers:\n    - url: %s\n      audiences: [%s, %s]\n      require_verified_email: true\n", q(s.Hydra.IssuerURL()), q(UserAudience), q(PageClientID))
	if s.PageURL != "" {
		fmt.Fprintf(&b, "user_page:\n  listen: %s\n  url: %s\n  tls: {cert_file: %s, key_file: %s}\n  client_id: %s\n  client_secret_file: %s\n  admin_groups: [agentid-admins]\n",
			q(s.pageAddr), q(s.PageURL), q(filepath.Join(s.dir, "page.crt")), q(filepath.Join(s.dir, "page.key")), q(PageClientID), q(filepath.Join(s.dir, "page-secret")))
	}
	b.WriteString("policy:\n  rules:\n")
	rule := func(name, agent string, scopes []string, ttl time.Duration, depth int) {
		fmt.Fprintf(&b, "    - name: %s\n      when: %s\n      scopes: [%s]\n      max_ttl: %s\n      max_depth: %d\n      callers: [local]\n",
			name, q(`"marketing" in user.groups && agent.name == "`+agent+`"`), strings.Join(scopes, ", "), ttl, depth)
	}
	rule("marketing-may-ask-the-orchestrator", "orchestrator", []string{"campaigns:read", "compliance:check"}, time.Hour, 2)
	rule("marketing-may-ask-the-research-assistant", "research-assistant", []string{"campaigns:read", "web:search"}, 30*time.Minute, 1)
	rule("marketing-may-ask-the-newsletter", "newsletter", []string{"campaigns:read"}, 30*time.Minute, 1)
	b.WriteString("agents:\n")
	for _, a := range Agents {
		fmt.Fprintf(&b, "  - name: %s\n    spiffe_id: %s\n    parent_id: %s\n", a.Name, q(a.ID.String()), q(s.Agent.ID().String()))
		fmt.Fprintf(&b, "    selectors: [%s, %s]\n", q("aiagent:name:"+a.Name), q("aiagent:signer:"+SignerKeyID))
		fmt.Fprintf(&b, "    scope_ceiling: [%s]\n", strings.Join(a.Ceiling, ", "))
		if len(a.SubAgents) > 0 {
			subs := make([]string, len(a.SubAgents))
			for i, id := range a.SubAgents {
				subs[i] = q(id.String())
			}
			fmt.Fprintf(&b, "    sub_agents: [%s]\n", strings.Join(subs, ", "))
		}
		b.WriteString("    jwt_svid_ttl: 5m\n")
	}
	fmt.Fprintf(&b, "access:\n  verifiers: [%s, %s]\n", q(ServiceID.String()), q(ExtAuthzID.String()))
	b.WriteString("log:\n  level: debug\n  format: text\n")
	return b.String()
}

// WaitForEntries waits until SPIRE holds an entry for every declared agent
// with its selectors and parent, as agentid-server's reconciler writes them,
// and returns them by SPIFFE ID.
func (s *Stack) WaitForEntries(t testing.TB, timeout time.Duration) map[spiffeid.ID]*types.Entry {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got := map[spiffeid.ID]*types.Entry{}
		for _, e := range s.SPIRE.Entries(t) {
			if id, err := entryID(e); err == nil && strings.HasPrefix(e.Id, "agentid-") {
				got[id] = e
			}
		}
		missing := []string{}
		for _, a := range Agents {
			if got[a.ID] == nil {
				missing = append(missing, a.ID.String())
			}
		}
		if len(missing) == 0 {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("stack: agentid-server did not register %s in SPIRE within %s", strings.Join(missing, ", "), timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// entryID is an entry's SPIFFE ID.
func entryID(e *types.Entry) (spiffeid.ID, error) {
	td, err := spiffeid.TrustDomainFromString(e.GetSpiffeId().GetTrustDomain())
	if err != nil {
		return spiffeid.ID{}, err
	}
	return spiffeid.FromPath(td, e.GetSpiffeId().GetPath())
}

// Build compiles main packages of the module (name → package path
// relative to the repository root) with one go build, into a directory of
// the test, and returns name → binary path. One invocation lets the go
// command link the programs in parallel.
func Build(t testing.TB, pkgs map[string]string) map[string]string {
	t.Helper()
	out := t.TempDir()
	list := make([]string, 0, len(pkgs))
	for _, p := range pkgs {
		list = append(list, p)
	}
	// The test's context: a demo interrupted during the build stops it.
	if err := harness.GoBuild(t.Context(), repoRoot(t), out, list...); err != nil {
		t.Fatalf("stack: %v", err)
	}
	bins := map[string]string{}
	for name, p := range pkgs {
		bins[name] = filepath.Join(out, filepath.Base(p))
	}
	return bins
}

// repoRoot walks up from the working directory to the module root.
func repoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatalf("stack: %v", err)
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && bytes.Contains(b, []byte("module github.com/agentid/agentid\n")) {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatalf("stack: no agentid go.mod above the working directory")
		}
		dir = parent
	}
}

// writeManifests makes the release key and a signed manifest for every
// declared agent and for the service.
func (s *Stack) writeManifests(t testing.TB) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatalf("stack: generate release key: %v", err)
	}
	s.signer = priv
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatalf("stack: encode release key: %v", err)
	}
	if err := os.WriteFile(s.pubKeyPath(), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		t.Fatalf("stack: write release key: %v", err)
	}
	// Every manifest binds the workload programs the stack runs with
	// manifests (agentid-attestor then gives signer only to them): a copy
	// of a manifest and its signature beside other code earns nothing.
	for _, name := range workloadPrograms {
		s.boundExes = append(s.boundExes, fileSHA256(t, s.Bin(t, name)))
	}
	for _, a := range Agents {
		s.manifests[a.Name] = s.WriteManifest(t, a.Name, a.Model, true)
	}
	s.manifests[serviceManifestName] = s.WriteManifest(t, serviceManifestName, "none/none", true)
	s.manifests[extAuthzManifestName] = s.WriteManifest(t, extAuthzManifestName, "none/none", true)
}

// workloadPrograms are the programs the stack runs attested by a manifest.
var workloadPrograms = []string{"probe", "agentid", "agentid-sidecar", "agentid-extauthz", "service", "go-agent"}

func fileSHA256(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("stack: %v", err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func (s *Stack) pubKeyPath() string { return filepath.Join(s.dir, SignerKeyID+".pub.pem") }

// WriteManifest writes an agentid.dev/v2 manifest for name (in a directory
// of its own), bound to the stack's workload programs, and, when signed,
// its detached signature by the release key, and returns the manifest's
// path: what AGENTID_MANIFEST of the agent process holds.
func (s *Stack) WriteManifest(t testing.TB, name, model string, signed bool) string {
	t.Helper()
	provider, modelName, _ := strings.Cut(model, "/")
	m := aiagent.Manifest{APIVersion: aiagent.APIVersionV2, Name: name, Version: "1.0.0",
		Model: aiagent.Model{Provider: provider, Name: modelName}, Tools: []string{"crm.read"}, Owner: "e2e@example.org",
		Binding: &aiagent.Binding{Executables: s.boundExes}}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatalf("stack: encode manifest: %v", err)
	}
	body := string(b) + "\n"
	dir, err := os.MkdirTemp(s.dir, "manifest-"+name+"-")
	if err != nil {
		t.Fatalf("stack: %v", err)
	}
	path := filepath.Join(dir, "manifest.json")
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatalf("stack: write manifest: %v", err)
	}
	if signed {
		sig, err := aiagent.SignManifest(SignerKeyID, s.signer, []byte(body))
		if err != nil {
			t.Fatalf("stack: sign manifest: %v", err)
		}
		if err := os.WriteFile(path+".sig", sig, 0o644); err != nil {
			t.Fatalf("stack: write signature: %v", err)
		}
	}
	return path
}

// Manifest is the path of the signed manifest of a declared agent (by
// name) or of the service ("crm-service").
func (s *Stack) Manifest(t testing.TB, name string) string {
	t.Helper()
	p, ok := s.manifests[name]
	if !ok {
		t.Fatalf("stack: no manifest for %q", name)
	}
	return p
}

// ServiceManifest is the signed manifest the service is attested by.
func (s *Stack) ServiceManifest(t testing.TB) string {
	t.Helper()
	return s.Manifest(t, serviceManifestName)
}

// TamperedManifest copies the named agent's signed manifest and signature,
// then changes one byte of the manifest (its version), so that the
// signature no longer verifies, and returns the copy's path.
func (s *Stack) TamperedManifest(t testing.TB, name string) string {
	t.Helper()
	src := s.Manifest(t, name)
	body, err := os.ReadFile(src)
	if err != nil {
		t.Fatalf("stack: %v", err)
	}
	sig, err := os.ReadFile(src + ".sig")
	if err != nil {
		t.Fatalf("stack: %v", err)
	}
	tampered := bytes.Replace(body, []byte(`"version":"1.0.0"`), []byte(`"version":"1.0.1"`), 1)
	if bytes.Equal(tampered, body) {
		t.Fatalf("stack: manifest of %s has no version to tamper with", name)
	}
	dir, err := os.MkdirTemp(s.dir, "tampered-"+name+"-")
	if err != nil {
		t.Fatalf("stack: %v", err)
	}
	path := filepath.Join(dir, "manifest.json")
	if err := os.WriteFile(path, tampered, 0o644); err != nil {
		t.Fatalf("stack: %v", err)
	}
	if err := os.WriteFile(path+".sig", sig, 0o644); err != nil {
		t.Fatalf("stack: %v", err)
	}
	return path
}

// CopiedManifest copies the named agent's signed manifest and its
// signature, byte for byte, to a directory of their own, as a process on
// the node that can read them would, and returns the copy's path.
func (s *Stack) CopiedManifest(t testing.TB, name string) string {
	t.Helper()
	src := s.Manifest(t, name)
	dir, err := os.MkdirTemp(s.dir, "copied-"+name+"-")
	if err != nil {
		t.Fatalf("stack: %v", err)
	}
	for _, suffix := range []string{"", aiagent.SignatureSuffix} {
		b, err := os.ReadFile(src + suffix)
		if err != nil {
			t.Fatalf("stack: %v", err)
		}
		if err := os.WriteFile(filepath.Join(dir, "manifest.json"+suffix), b, 0o644); err != nil {
			t.Fatalf("stack: %v", err)
		}
	}
	return filepath.Join(dir, "manifest.json")
}

// Impostor writes a program that is not one the manifests bind, yet acts
// as the probe does: the probe's bytes with bytes appended (the kernel
// ignores what follows an ELF's segments), so its executable digest
// differs as the attacker's own code's would. It returns the path.
func (s *Stack) Impostor(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile(s.Bin(t, "probe"))
	if err != nil {
		t.Fatalf("stack: %v", err)
	}
	p := filepath.Join(s.dir, "impostor")
	if err := os.WriteFile(p, append(b, "\x00not the agent's code\n"...), 0o755); err != nil {
		t.Fatalf("stack: %v", err)
	}
	return p
}

// WorkloadEnv is the environment of a process attested with manifest:
// the Workload API socket and AGENTID_MANIFEST ("" leaves it unset).
func (s *Stack) WorkloadEnv(manifest string) []string {
	env := []string{"SPIFFE_ENDPOINT_SOCKET=" + s.Agent.WorkloadAddr()}
	if manifest != "" {
		env = append(env, aiagent.ManifestEnv+"="+manifest)
	}
	return env
}

func since(t time.Time) time.Duration { return time.Since(t).Round(time.Millisecond) }
