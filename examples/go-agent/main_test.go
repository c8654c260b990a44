package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/agentid/agentid/examples/service/whoami"
	"github.com/agentid/agentid/pkg/agentclient/agentclienttest"
	"github.com/agentid/agentid/pkg/delegation"
	"github.com/agentid/agentid/pkg/server/servertest"
	delegationv1 "github.com/agentid/agentid/proto/agentid/delegation/v1"
	"google.golang.org/protobuf/types/known/durationpb"
)

// The example end to end against a real agentid-server and the fake
// Workload API: the agent delegates, calls the whoami service, and revokes.
func TestGoAgentCallsServiceForUser(t *testing.T) {
	env := servertest.Start(t)
	auth := agentclienttest.NewAuthority(t, agentclienttest.AuthorityConfig{CA: env.CA, Delegations: env.Store.GetDelegation})
	svc, err := whoami.Start(servertest.Ctx(t), whoami.Config{
		WorkloadAPIAddr: auth.Serve(t, servertest.Verifier).Addr, Listen: "127.0.0.1:0",
		ServerAddr: env.MTLSAddr, ServerID: servertest.ServerID,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	tokenFile := filepath.Join(t.TempDir(), "id-token")
	if err := os.WriteFile(tokenFile, []byte(env.AliceToken(t)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := parseFlags(flag.NewFlagSet("go-agent", flag.ContinueOnError), []string{
		"-workload-api", auth.Serve(t, servertest.Orchestrator).Addr,
		"-server-addr", env.MTLSAddr, "-server-id", servertest.ServerID.String(),
		"-service-url", "https://" + svc.Addr().String() + "/whoami", "-service-id", servertest.Verifier.String(),
		"-user-token-file", tokenFile, "-scopes", "campaigns:read compliance:check",
	})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := run(servertest.Ctx(t), c, &out); err != nil {
		t.Fatal(err)
	}
	var a whoami.Answer
	if err := json.Unmarshal(out.Bytes(), &a); err != nil {
		t.Fatalf("output %q: %v", out.String(), err)
	}
	if a.Agent != servertest.Orchestrator.String() || a.User.Subject != "alice" || a.User.Issuer != env.IDP.URL() ||
		len(a.Scopes) != 2 || a.Scopes[0] != "campaigns:read" || len(a.Delegation.Chain) != 1 ||
		a.Delegation.Chain[0] != servertest.Orchestrator.String() || a.Delegation.ID != a.Delegation.Root {
		t.Fatalf("service saw %+v", a)
	}
	d, err := env.Store.GetDelegation(servertest.Ctx(t), delegation.MustParseID(a.Delegation.ID))
	if err != nil || d.State != delegation.StateRevoked || d.RevokeReason != "task done" {
		t.Fatalf("delegation after the run: %+v, %v", d, err)
	}
}

func TestGoAgentFlags(t *testing.T) {
	t.Setenv("USER_TOKEN", "")
	fs := flag.NewFlagSet("go-agent", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	_, err := parseFlags(fs, []string{"-service-url", "http://x"})
	want := "-server-id: cannot be empty; -service-id: cannot be empty; -server-addr is required; " +
		"-service-url must be an https:// URL; a user token is required (-user-token-file or USER_TOKEN), or -delegation"
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v\nwant %s", err, want)
	}
}

// Under an existing delegation (here one the front end made for the
// orchestrator) the agent needs no user token and leaves the delegation as
// it found it.
func TestGoAgentUnderExistingDelegation(t *testing.T) {
	t.Setenv("USER_TOKEN", "")
	env := servertest.Start(t)
	auth := agentclienttest.NewAuthority(t, agentclienttest.AuthorityConfig{CA: env.CA, Delegations: env.Store.GetDelegation})
	svc, err := whoami.Start(servertest.Ctx(t), whoami.Config{
		WorkloadAPIAddr: auth.Serve(t, servertest.Verifier).Addr, Listen: "127.0.0.1:0",
		ServerAddr: env.MTLSAddr, ServerID: servertest.ServerID,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	resp, err := env.As(t, servertest.Frontend).Delegations.CreateDelegation(servertest.Ctx(t), &delegationv1.CreateDelegationRequest{
		UserToken: env.AliceToken(t), AgentId: servertest.Orchestrator.String(), Scopes: []string{"campaigns:read"},
		Ttl: durationpb.New(time.Hour),
	})
	if err != nil {
		t.Fatal(err)
	}
	c, err := parseFlags(flag.NewFlagSet("go-agent", flag.ContinueOnError), []string{
		"-workload-api", auth.Serve(t, servertest.Orchestrator).Addr,
		"-server-addr", env.MTLSAddr, "-server-id", servertest.ServerID.String(),
		"-service-url", "https://" + svc.Addr().String() + "/whoami", "-service-id", servertest.Verifier.String(),
		"-delegation", resp.Delegation.Id,
	})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := run(servertest.Ctx(t), c, &out); err != nil {
		t.Fatal(err)
	}
	var a whoami.Answer
	if err := json.Unmarshal(out.Bytes(), &a); err != nil {
		t.Fatalf("output %q: %v", out.String(), err)
	}
	if a.Delegation.ID != resp.Delegation.Id || a.User.Subject != "alice" {
		t.Fatalf("service saw %+v", a)
	}
	d, err := env.Store.GetDelegation(servertest.Ctx(t), delegation.MustParseID(resp.Delegation.Id))
	if err != nil || d.State != delegation.StateActive {
		t.Fatalf("delegation after the run: %+v, %v", d, err)
	}
}
