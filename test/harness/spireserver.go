package harness

import (
	"context"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	agentv1 "github.com/spiffe/spire-api-sdk/proto/spire/api/server/agent/v1"
	bundlev1 "github.com/spiffe/spire-api-sdk/proto/spire/api/server/bundle/v1"
	entryv1 "github.com/spiffe/spire-api-sdk/proto/spire/api/server/entry/v1"
	"github.com/spiffe/spire-api-sdk/proto/spire/api/types"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health/grpc_health_v1"
)

// Defaults of ServerOptions and AgentOptions.
const (
	// DefaultTrustDomain is the trust domain of every harness server.
	DefaultTrustDomain = "example.org"
	// DefaultSyncInterval is the server's cache_reload_interval and the
	// agent's sync_interval: a new entry reaches a workload in about a
	// second instead of five.
	DefaultSyncInterval = time.Second
	// startTimeout bounds every readiness wait; SPIRE is ready in well
	// under a second, Hydra in a few.
	startTimeout = 30 * time.Second
	// callTimeout bounds one API call made by the harness.
	callTimeout = 10 * time.Second
)

// ServerOptions configures StartSPIREServer. The zero value is a server for
// example.org with the built-in plugins only.
type ServerOptions struct {
	// TrustDomain defaults to DefaultTrustDomain.
	TrustDomain string
	// JWTIssuer is the server's jwt_issuer, the "iss" of every JWT-SVID.
	// Default: the URL StartOIDCDiscovery serves on for this server
	// (http://127.0.0.1:<port reserved at server start>), so that
	// discovery-based verifiers find the keys from the token's issuer.
	JWTIssuer string
	// DefaultJWTSVIDTTL is default_jwt_svid_ttl; zero keeps SPIRE's 5m.
	DefaultJWTSVIDTTL time.Duration
	// CacheReloadInterval is experimental.cache_reload_interval; zero
	// gives DefaultSyncInterval.
	CacheReloadInterval time.Duration
	// CredentialComposer, when set, is loaded as an external
	// CredentialComposer plugin.
	CredentialComposer *ExternalPlugin
	// LogLevel defaults to "DEBUG" (the log is printed only on failure).
	LogLevel string
	// ProfilingPort, when set, serves net/http/pprof on localhost:<port>
	// (profiling_port). A diagnostic: SPIRE then also turns on gRPC
	// tracing, which costs every call a little.
	ProfilingPort int
	// Prometheus turns on spire-server's Prometheus telemetry sink on
	// 127.0.0.1:<port reserved at server start>; MetricsURL is where to
	// scrape it. Plugins' metrics (those they send through SPIRE's
	// metrics host service) appear there too.
	Prometheus bool
}

// SPIREServer is a running spire-server: sqlite datastore, join_token node
// attestation, disk key manager, admin API on a unix socket, agent API on
// loopback. It is stopped when the test ends.
type SPIREServer struct {
	proc          *process
	trustDomain   spiffeid.TrustDomain
	jwtIssuer     string
	adminSocket   string
	bindPort      int
	discoveryPort int
	// metricsPort is the Prometheus sink's port, 0 when off.
	metricsPort int
	dataDir     string

	connOnce sync.Once
	conn     *grpc.ClientConn
	connErr  error
}

// StartSPIREServer starts spire-server and waits until its admin API
// answers health checks. The server runs with ratelimit signing off and a
// short cache_reload_interval, as a test needs.
func StartSPIREServer(t testing.TB, opts ServerOptions) *SPIREServer {
	t.Helper()
	if opts.TrustDomain == "" {
		opts.TrustDomain = DefaultTrustDomain
	}
	td, err := spiffeid.TrustDomainFromString(opts.TrustDomain)
	if err != nil {
		t.Fatalf("harness: trust domain: %v", err)
	}
	if opts.CacheReloadInterval == 0 {
		opts.CacheReloadInterval = DefaultSyncInterval
	}
	if opts.LogLevel == "" {
		opts.LogLevel = "DEBUG"
	}
	bin := tool(t, toolSPIRE, "spire-server")

	dir := t.TempDir()
	s := &SPIREServer{
		trustDomain: td,
		adminSocket: filepath.Join(socketDir(t), "server.sock"),
		dataDir:     filepath.Join(dir, "data"),
	}
	t.Cleanup(func() {
		if s.conn != nil {
			s.conn.Close()
		}
	})
	// The discovery port is only reserved here (oidc-discovery-provider
	// binds it later); spire-server binds bindPort, and starts again on
	// new ports when it lost that one.
	nPorts := 2
	if opts.Prometheus {
		nPorts = 3
	}
	startOnPorts(t, nPorts, func(ports []int) (*process, error) {
		s.bindPort, s.discoveryPort = ports[0], ports[1]
		if opts.Prometheus {
			s.metricsPort = ports[2]
		}
		s.jwtIssuer = opts.JWTIssuer
		if s.jwtIssuer == "" {
			s.jwtIssuer = fmt.Sprintf("http://127.0.0.1:%d", s.discoveryPort)
		}
		conf, err := s.config(opts)
		if err != nil {
			t.Fatal(err)
		}
		confPath := filepath.Join(dir, "server.conf")
		if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
			t.Fatalf("harness: write server config: %v", err)
		}
		if s.proc == nil {
			s.proc = newProcess(t, "spire-server", bin, dir, dir, "run", "-config", confPath)
		}
		s.proc.start(t)
		return s.proc, awaitReady(s.proc, "spire-server healthy", startTimeout, s.healthy)
	})
	return s
}

func (s *SPIREServer) config(opts ServerOptions) (string, error) {
	var b strings.Builder
	b.WriteString("server {\n")
	fmt.Fprintf(&b, "  bind_address = %s\n", hclString("127.0.0.1"))
	fmt.Fprintf(&b, "  bind_port = %d\n", s.bindPort)
	fmt.Fprintf(&b, "  socket_path = %s\n", hclString(s.adminSocket))
	fmt.Fprintf(&b, "  trust_domain = %s\n", hclString(s.trustDomain.Name()))
	fmt.Fprintf(&b, "  data_dir = %s\n", hclString(s.dataDir))
	fmt.Fprintf(&b, "  log_level = %s\n", hclString(opts.LogLevel))
	fmt.Fprintf(&b, "  jwt_issuer = %s\n", hclString(s.jwtIssuer))
	if opts.ProfilingPort > 0 {
		fmt.Fprintf(&b, "  profiling_enabled = true\n  profiling_port = %d\n", opts.ProfilingPort)
	}
	if opts.DefaultJWTSVIDTTL > 0 {
		fmt.Fprintf(&b, "  default_jwt_svid_ttl = %s\n", hclDuration(opts.DefaultJWTSVIDTTL))
	}
	// The signing limiter makes JWT-SVID callers wait past 500/s per IP;
	// load tests would measure the limiter.
	b.WriteString("  ratelimit {\n    signing = false\n  }\n")
	fmt.Fprintf(&b, "  experimental {\n    cache_reload_interval = %s\n  }\n", hclDuration(opts.CacheReloadInterval))
	b.WriteString("}\n\nplugins {\n")
	fmt.Fprintf(&b, "  DataStore \"sql\" {\n    plugin_data {\n      database_type = \"sqlite3\"\n      connection_string = %s\n    }\n  }\n",
		hclString(filepath.Join(s.dataDir, "datastore.sqlite3")))
	b.WriteString("  NodeAttestor \"join_token\" {\n    plugin_data {}\n  }\n")
	// Disk, not memory: a restarted server keeps its CA, so agents keep
	// trusting it.
	fmt.Fprintf(&b, "  KeyManager \"disk\" {\n    plugin_data {\n      keys_path = %s\n    }\n  }\n",
		hclString(filepath.Join(s.dataDir, "keys.json")))
	if opts.CredentialComposer != nil {
		p, err := opts.CredentialComposer.hcl("CredentialComposer")
		if err != nil {
			return "", err
		}
		b.WriteString(p)
	}
	b.WriteString("}\n")
	if s.metricsPort > 0 {
		// SPIRE v1.13.3's telemetry block (pkg/common/telemetry/config.go).
		fmt.Fprintf(&b, "\ntelemetry {\n  Prometheus {\n    host = %s\n    port = %d\n  }\n}\n", hclString("127.0.0.1"), s.metricsPort)
	}
	return b.String(), nil
}

func (s *SPIREServer) start(t testing.TB) {
	t.Helper()
	s.proc.start(t)
	waitReady(t, s.proc, "spire-server healthy", startTimeout, s.healthy)
}

// healthy asks the admin API's gRPC health service, as `spire-server
// healthcheck` does.
func (s *SPIREServer) healthy() error {
	conn, err := s.dial()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	resp, err := grpc_health_v1.NewHealthClient(conn).Check(ctx, &grpc_health_v1.HealthCheckRequest{})
	if err != nil {
		return err
	}
	if resp.Status != grpc_health_v1.HealthCheckResponse_SERVING {
		return fmt.Errorf("status %s", resp.Status)
	}
	return nil
}

func (s *SPIREServer) dial() (*grpc.ClientConn, error) {
	s.connOnce.Do(func() {
		s.conn, s.connErr = grpc.NewClient("unix://"+s.adminSocket,
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			// gRPC's default reconnect backoff starts at 1 s: it would
			// add a second to every start and restart, where the
			// socket appears within a poll interval or two.
			grpc.WithConnectParams(grpc.ConnectParams{
				Backoff: backoff.Config{
					BaseDelay:  pollInterval,
					Multiplier: 1.6,
					Jitter:     0.2,
					MaxDelay:   time.Second,
				},
				MinConnectTimeout: time.Second,
			}))
	})
	return s.conn, s.connErr
}

// Conn is a gRPC connection to the admin API socket, for the Server API
// clients of spire-api-sdk (entryv1.NewEntryClient(conn), ...). It
// survives Restart and is closed when the test ends.
func (s *SPIREServer) Conn(t testing.TB) *grpc.ClientConn {
	t.Helper()
	conn, err := s.dial()
	if err != nil {
		t.Fatalf("harness: dial spire-server admin socket: %v", err)
	}
	return conn
}

// AdminSocket is the path of the admin API unix socket (socket_path), what
// agentid-server and the spire-server CLI's -socketPath take.
func (s *SPIREServer) AdminSocket() string { return s.adminSocket }

// TrustDomain is the server's trust domain.
func (s *SPIREServer) TrustDomain() spiffeid.TrustDomain { return s.trustDomain }

// JWTIssuer is the server's jwt_issuer, the "iss" of its JWT-SVIDs.
func (s *SPIREServer) JWTIssuer() string { return s.jwtIssuer }

// MetricsURL is where spire-server serves its Prometheus metrics
// (ServerOptions.Prometheus), "" when it does not.
func (s *SPIREServer) MetricsURL() string {
	if s.metricsPort == 0 {
		return ""
	}
	return fmt.Sprintf("http://127.0.0.1:%d/metrics", s.metricsPort)
}

// AgentAddress is the host:port agents connect to.
func (s *SPIREServer) AgentAddress() string { return fmt.Sprintf("127.0.0.1:%d", s.bindPort) }

// LogPath is the file holding the server's output, for tests that assert
// on what SPIRE logged (a plugin's error, say).
func (s *SPIREServer) LogPath() string { return s.proc.logPath }

// Pid is the spire-server process id, 0 when stopped.
func (s *SPIREServer) Pid() int { return s.proc.pid() }

// Stop terminates the server (SIGTERM, SIGKILL after a grace period) and
// waits for it. Its data directory is kept for Start.
func (s *SPIREServer) Stop(t testing.TB) {
	t.Helper()
	s.proc.stop()
}

// Kill ends the server with SIGKILL, as a crash would.
func (s *SPIREServer) Kill(t testing.TB) {
	t.Helper()
	s.proc.kill()
}

// Start runs a stopped server again with the same configuration, data
// (entries, CA keys) and ports, and waits until it is healthy.
func (s *SPIREServer) Start(t testing.TB) {
	t.Helper()
	s.start(t)
}

// Restart is Stop then Start.
func (s *SPIREServer) Restart(t testing.TB) {
	t.Helper()
	s.Stop(t)
	s.Start(t)
}

// CreateJoinToken makes a single-use join token valid for ten minutes. An
// agent attesting with it gets spiffe://<td>/spire/agent/join_token/<token>.
func (s *SPIREServer) CreateJoinToken(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	resp, err := agentv1.NewAgentClient(s.Conn(t)).CreateJoinToken(ctx, &agentv1.CreateJoinTokenRequest{Ttl: 600})
	if err != nil {
		t.Fatalf("harness: create join token: %v", err)
	}
	return resp.Value
}

// BundlePEM is the trust domain's X.509 authorities in PEM, what an
// agent's trust_bundle_path holds.
func (s *SPIREServer) BundlePEM(t testing.TB) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	b, err := bundlev1.NewBundleClient(s.Conn(t)).GetBundle(ctx, &bundlev1.GetBundleRequest{})
	if err != nil {
		t.Fatalf("harness: get bundle: %v", err)
	}
	var out []byte
	for _, a := range b.X509Authorities {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: a.Asn1})...)
	}
	if len(out) == 0 {
		t.Fatalf("harness: bundle of %s has no X.509 authority", s.trustDomain)
	}
	return out
}

// Entry is a registration entry to create. Selectors are "type:value"
// strings, as on the spire-server command line ("unix:uid:1000").
type Entry struct {
	// ID is optional; SPIRE generates one when empty.
	ID        string
	SPIFFEID  spiffeid.ID
	ParentID  spiffeid.ID
	Selectors []string
	// X509SVIDTTL and JWTSVIDTTL are optional; zero keeps the server's
	// defaults.
	X509SVIDTTL time.Duration
	JWTSVIDTTL  time.Duration
}

// CreateEntry creates one registration entry through the Server API and
// returns its id.
func (s *SPIREServer) CreateEntry(t testing.TB, e Entry) string {
	t.Helper()
	pe, err := e.proto()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	resp, err := entryv1.NewEntryClient(s.Conn(t)).BatchCreateEntry(ctx, &entryv1.BatchCreateEntryRequest{
		Entries: []*types.Entry{pe},
	})
	if err != nil {
		t.Fatalf("harness: create entry %s: %v", e.SPIFFEID, err)
	}
	r := resp.Results[0]
	if codes.Code(r.Status.Code) != codes.OK {
		t.Fatalf("harness: create entry %s: %s: %s", e.SPIFFEID, codes.Code(r.Status.Code), r.Status.Message)
	}
	return r.Entry.Id
}

func (e Entry) proto() (*types.Entry, error) {
	if e.SPIFFEID.IsZero() || e.ParentID.IsZero() {
		return nil, fmt.Errorf("harness: entry needs a SPIFFE ID and a parent ID")
	}
	if len(e.Selectors) == 0 {
		return nil, fmt.Errorf("harness: entry %s has no selector", e.SPIFFEID)
	}
	pe := &types.Entry{
		Id:          e.ID,
		SpiffeId:    &types.SPIFFEID{TrustDomain: e.SPIFFEID.TrustDomain().Name(), Path: e.SPIFFEID.Path()},
		ParentId:    &types.SPIFFEID{TrustDomain: e.ParentID.TrustDomain().Name(), Path: e.ParentID.Path()},
		X509SvidTtl: int32(e.X509SVIDTTL / time.Second),
		JwtSvidTtl:  int32(e.JWTSVIDTTL / time.Second),
	}
	for _, sel := range e.Selectors {
		typ, value, ok := strings.Cut(sel, ":")
		if !ok || typ == "" || value == "" {
			return nil, fmt.Errorf("harness: selector %q: want type:value", sel)
		}
		pe.Selectors = append(pe.Selectors, &types.Selector{Type: typ, Value: value})
	}
	return pe, nil
}

// Entries lists every registration entry on the server.
func (s *SPIREServer) Entries(t testing.TB) []*types.Entry {
	t.Helper()
	client := entryv1.NewEntryClient(s.Conn(t))
	var all []*types.Entry
	token := ""
	for {
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		resp, err := client.ListEntries(ctx, &entryv1.ListEntriesRequest{PageSize: 500, PageToken: token})
		cancel()
		if err != nil {
			t.Fatalf("harness: list entries: %v", err)
		}
		all = append(all, resp.Entries...)
		token = resp.NextPageToken
		if token == "" {
			return all
		}
	}
}
