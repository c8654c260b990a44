package stack

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"gopkg.in/yaml.v3"

	"github.com/agentid/agentid/pkg/verify/extauthz"
	"github.com/agentid/agentid/test/harness"
)

// readyTimeout bounds the start of the example programs.
const readyTimeout = 60 * time.Second

// ServiceURL is the URL of the service's /whoami.
func (s *Stack) ServiceURL() string { return "https://" + s.ServiceAddr + "/whoami" }

// startService runs examples/service attested by its signed manifest, with
// the revocation watch on agentid-server; it listens once the watch has its
// first snapshot.
func (s *Stack) startService(t testing.TB) {
	t.Helper()
	s.Service, _ = harness.StartProgramOnPorts(t, 1, "example service listening", readyTimeout,
		func(ports []int) (harness.ProgramOptions, func() error) {
			s.ServiceAddr = "127.0.0.1:" + strconv.Itoa(ports[0])
			return harness.ProgramOptions{
					Name: "service", Path: s.Bin(t, "service"),
					Args: []string{"-listen", s.ServiceAddr, "-server-addr", s.ServerAddr, "-server-id", ServerID.String()},
					Env:  s.WorkloadEnv(s.ServiceManifest(t)),
				}, func() error {
					c, err := net.DialTimeout("tcp", s.ServiceAddr, time.Second)
					if err != nil {
						return err
					}
					return c.Close()
				}
		})
}

// Sidecar is a running agentid-sidecar for one agent.
type Sidecar struct {
	*harness.Program
	// APIURL is the local API's base URL, ProxyURL the egress proxy's.
	APIURL, ProxyURL string
}

// StartSidecar runs agentid-sidecar as the named agent (attested by the
// agent's signed manifest: the sidecar is the process that holds the
// identity), with the service as route "crm", and waits for /healthz.
func (s *Stack) StartSidecar(t testing.TB, agent string) *Sidecar {
	t.Helper()
	var spec *AgentSpec
	for i := range Agents {
		if Agents[i].Name == agent {
			spec = &Agents[i]
		}
	}
	if spec == nil {
		t.Fatalf("stack: %q is not a declared agent", agent)
	}
	path := filepath.Join(s.dir, "sidecar-"+agent+".yaml")
	sc := &Sidecar{}
	sc.Program, _ = harness.StartProgramOnPorts(t, 2, "agentid-sidecar of "+agent+" /healthz", readyTimeout,
		func(ports []int) (harness.ProgramOptions, func() error) {
			api := "127.0.0.1:" + strconv.Itoa(ports[0])
			proxy := "127.0.0.1:" + strconv.Itoa(ports[1])
			conf := fmt.Sprintf(`listen: %q
proxy_listen: %q
workload_api: %q
spiffe_id: %q
server:
  address: %q
  spiffe_id: %q
routes:
  - name: crm
    upstream: %q
    spiffe_id: %q
`, api, proxy, s.Agent.WorkloadAddr(), spec.ID, s.ServerAddr, ServerID, s.ServiceAddr, ServiceID)
			if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
				t.Fatalf("stack: write sidecar config: %v", err)
			}
			sc.APIURL, sc.ProxyURL = "http://"+api, "http://"+proxy
			return harness.ProgramOptions{
				Name: "agentid-sidecar-" + agent, Path: s.Bin(t, "agentid-sidecar"), Args: []string{"-config", path},
				Env: s.WorkloadEnv(s.Manifest(t, agent)),
			}, sc.healthy
		})
	return sc
}

// healthy asks the sidecar's /healthz once.
func (sc *Sidecar) healthy() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, sc.APIURL+"/healthz", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("/healthz: %s", resp.Status)
	}
	return nil
}

// ExtAuthzOptions configure StartExtAuthz.
type ExtAuthzOptions struct {
	// Rules are agentid-extauthz's route rules, in order; at least one.
	Rules []extauthz.Rule
	// AllowPlainTokens accepts JWT-SVIDs without delegation claims (the
	// rules still decide on them).
	AllowPlainTokens bool
	// TLSClientIDs, when set, serve the ext_authz listener over mTLS (the
	// chart's production setting): agentid-extauthz presents its
	// X509-SVID and admits only clients with these SPIFFE IDs
	// (tls.client_ids). Readiness is then asked of the admin listener's
	// /readyz, as the chart's readinessProbe does, since a health check
	// would need an admitted client's certificate.
	TLSClientIDs []spiffeid.ID
}

// ExtAuthz is a running agentid-extauthz.
type ExtAuthz struct {
	*harness.Program
	// Addr is its ext_authz gRPC listener on loopback, where an Envoy
	// beside it would send CheckRequests: plaintext, or mTLS when MTLS.
	Addr string
	// MTLS reports that Addr is the mTLS listener (TLSClientIDs set).
	MTLS bool
	// AdminAddr serves /healthz, /readyz and /metrics over HTTP; set only
	// with MTLS.
	AdminAddr string
}

// StartExtAuthz runs agentid-extauthz in front of the service: attested
// by its signed manifest as ExtAuthzID, the JWT bundles from the
// spire-agent's Workload API, the revocation watch on agentid-server over
// mTLS, audience ServiceID, agents of TrustDomain. It returns once the
// gRPC health check answers SERVING (or, with TLSClientIDs, once /readyz
// answers 200), which agentid-extauthz does only after the watch's first
// snapshot. A plaintext and an mTLS instance may run side by side.
func (s *Stack) StartExtAuthz(t testing.TB, opts ExtAuthzOptions) *ExtAuthz {
	t.Helper()
	type rule struct {
		Name  string `yaml:"name"`
		Match string `yaml:"match,omitempty"`
		Allow string `yaml:"allow"`
	}
	rules := make([]rule, len(opts.Rules))
	for i, r := range opts.Rules {
		rules[i] = rule(r)
	}
	ea := &ExtAuthz{MTLS: len(opts.TLSClientIDs) > 0}
	name, nPorts, what, ready := "agentid-extauthz", 1, "agentid-extauthz SERVING", ea.serving
	if ea.MTLS {
		name, nPorts, what, ready = "agentid-extauthz-mtls", 2, "agentid-extauthz (mTLS) /readyz", ea.adminReady
	}
	path := filepath.Join(s.dir, name+".yaml")
	ea.Program, _ = harness.StartProgramOnPorts(t, nPorts, what, readyTimeout,
		func(ports []int) (harness.ProgramOptions, func() error) {
			ea.Addr = "127.0.0.1:" + strconv.Itoa(ports[0])
			conf := map[string]any{
				"listen":              ea.Addr,
				"workload_api_socket": s.Agent.WorkloadAddr(),
				"trust_domains":       []string{TrustDomain},
				"audiences":           []string{ServiceID.String()},
				"allow_plain_tokens":  opts.AllowPlainTokens,
				"revocation":          map[string]string{"address": s.ServerAddr, "server_id": ServerID.String()},
				"rules":               rules,
				"log_level":           "debug",
			}
			if ea.MTLS {
				ea.AdminAddr = "127.0.0.1:" + strconv.Itoa(ports[1])
				ids := make([]string, len(opts.TLSClientIDs))
				for i, id := range opts.TLSClientIDs {
					ids[i] = id.String()
				}
				conf["tls"] = map[string]any{"client_ids": ids}
				conf["admin_listen"] = ea.AdminAddr
			}
			b, err := yaml.Marshal(conf)
			if err != nil {
				t.Fatalf("stack: encode agentid-extauthz config: %v", err)
			}
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatalf("stack: write agentid-extauthz config: %v", err)
			}
			return harness.ProgramOptions{
				Name: name, Path: s.Bin(t, "agentid-extauthz"), Args: []string{"-config", path},
				Env: s.WorkloadEnv(s.Manifest(t, extAuthzManifestName)),
			}, ready
		})
	return ea
}

// adminReady asks agentid-extauthz's /readyz once. agentid-extauthz binds
// its ext_authz listener before the admin one, so a 200 here means both
// listen and the revocation snapshot is in.
func (ea *ExtAuthz) adminReady() error { return readyz(ea.AdminAddr) }

// ChecksTotal reads agentid_extauthz_checks_total from /metrics, summed
// over its labels: how many Check calls agentid-extauthz answered. Only
// with MTLS (the admin listener).
func (ea *ExtAuthz) ChecksTotal(t testing.TB) float64 {
	t.Helper()
	if ea.AdminAddr == "" {
		t.Fatalf("stack: agentid-extauthz has no admin listener (plaintext instance)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+ea.AdminAddr+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("stack: agentid-extauthz /metrics: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("stack: agentid-extauthz /metrics: %s %v", resp.Status, err)
	}
	// A counter vector has no line before its first increment: absent
	// is zero.
	total := 0.0
	for line := range strings.Lines(string(body)) {
		if !strings.HasPrefix(line, "agentid_extauthz_checks_total{") {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			t.Fatalf("stack: agentid-extauthz /metrics line %q: %v", strings.TrimSpace(line), err)
		}
		total += v
	}
	return total
}

// serving asks agentid-extauthz's gRPC health service once.
func (ea *ExtAuthz) serving() error {
	conn, err := grpc.NewClient(ea.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		return err
	}
	if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		return fmt.Errorf("health: %s", resp.GetStatus())
	}
	return nil
}
