package stack

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

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
