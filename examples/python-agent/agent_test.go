// Package pythonagent tests the Python example agent (agent.py) against a
// real sidecar, agentid-server and whoami service, with the fake Workload
// API. The test runs python3 with exec and is skipped only when python3 is
// not installed.
package pythonagent

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/agentid/agentid/examples/service/whoami"
	"github.com/agentid/agentid/pkg/agentclient/agentclienttest"
	"github.com/agentid/agentid/pkg/delegation"
	"github.com/agentid/agentid/pkg/server/servertest"
	"github.com/agentid/agentid/pkg/sidecar"
)

type fixture struct {
	env    *servertest.Env
	sc     *sidecar.Sidecar
	python string
}

func start(t *testing.T) *fixture {
	t.Helper()
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 is not installed: the Python example is not exercised")
	}
	env := servertest.Start(t)
	auth := agentclienttest.NewAuthority(t, agentclienttest.AuthorityConfig{CA: env.CA, Delegations: env.Store.GetDelegation})
	svc, err := whoami.Start(servertest.Ctx(t), whoami.Config{
		WorkloadAPIAddr: auth.Serve(t, servertest.Verifier).Addr, Listen: "127.0.0.1:0",
		ServerAddr: env.MTLSAddr, ServerID: servertest.ServerID,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close() })
	config, err := sidecar.ParseConfig([]byte(fmt.Sprintf(`
listen: 127.0.0.1:0
proxy_listen: 127.0.0.1:0
workload_api: %s
server: {address: "%s", spiffe_id: "%s"}
routes:
  - {name: crm, upstream: "%s", spiffe_id: "%s"}
`, auth.Serve(t, servertest.Orchestrator).Addr, env.MTLSAddr, servertest.ServerID, svc.Addr(), servertest.Verifier)))
	if err != nil {
		t.Fatal(err)
	}
	sc, err := sidecar.Start(servertest.Ctx(t), config)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sc.Close() })
	return &fixture{env: env, sc: sc, python: python}
}

func (f *fixture) run(t *testing.T, env ...string) (stdout, stderr string, err error) {
	t.Helper()
	cmd := exec.CommandContext(servertest.Ctx(t), f.python, "agent.py")
	cmd.Env = append([]string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"),
		"SIDECAR_URL=http://" + f.sc.APIAddr().String(),
		"PROXY_URL=http://" + f.sc.ProxyAddr().String(),
		"ROUTE=crm",
	}, env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	return out.String(), errOut.String(), err
}

func TestPythonAgent(t *testing.T) {
	f := start(t)
	stdout, stderr, err := f.run(t, "USER_TOKEN="+f.env.AliceToken(t), "SCOPES=campaigns:read compliance:check")
	if err != nil {
		t.Fatalf("agent.py: %v\n%s", err, stderr)
	}
	var a whoami.Answer
	if err := json.Unmarshal([]byte(stdout), &a); err != nil {
		t.Fatalf("stdout %q: %v\n%s", stdout, err, stderr)
	}
	if a.Agent != servertest.Orchestrator.String() || a.User.Subject != "alice" || strings.Join(a.Scopes, " ") != "campaigns:read compliance:check" ||
		len(a.Delegation.Chain) != 1 {
		t.Fatalf("service saw %+v", a)
	}
	d, err := f.env.Store.GetDelegation(servertest.Ctx(t), delegation.MustParseID(a.Delegation.ID))
	if err != nil || d.State != delegation.StateRevoked {
		t.Fatalf("delegation after the run: %+v, %v", d, err)
	}
	if !strings.Contains(stderr, "agent: spiffe://example.org/agent/orchestrator") || !strings.Contains(stderr, "revoked "+a.Delegation.ID) {
		t.Fatalf("stderr %s", stderr)
	}
}

func TestPythonAgentReportsRefusals(t *testing.T) {
	f := start(t)
	tests := []struct {
		name string
		env  []string
		want string
	}{
		{"bad user token", []string{"USER_TOKEN=not-a-jwt"}, "python-agent: 401 unauthenticated: agentid-server: "},
		{"no user token", nil, "python-agent: set USER_TOKEN or USER_TOKEN_FILE to the user's OIDC ID token"},
		{"unknown route", []string{"USER_TOKEN=" + f.env.AliceToken(t), "ROUTE=nowhere"}, `python-agent: 502 unknown_route: sidecar: no route for host "nowhere"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, stderr, err := f.run(t, tt.env...)
			if exit, ok := errors.AsType[*exec.ExitError](err); !ok || exit.ExitCode() != 1 || !strings.Contains(stderr, tt.want) {
				t.Fatalf("err %v, stderr %s\nwant %s", err, stderr, tt.want)
			}
		})
	}
}
