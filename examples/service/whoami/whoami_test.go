package whoami_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/agentid/agentid/examples/service/whoami"
	"github.com/agentid/agentid/pkg/agentclient"
	"github.com/agentid/agentid/pkg/agentclient/agentclienttest"
	"github.com/agentid/agentid/pkg/server/servertest"
)

func call(t *testing.T, ctx context.Context, client *http.Client, url string) (int, string) {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestWhoami(t *testing.T) {
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
	if svc.ID() != servertest.Verifier {
		t.Fatalf("service ID %s", svc.ID())
	}

	agent, err := agentclient.New(servertest.Ctx(t), agentclient.Config{WorkloadAPIAddr: auth.Serve(t, servertest.Orchestrator).Addr})
	if err != nil {
		t.Fatal(err)
	}
	defer agent.Close()
	server, err := agent.DialServer(env.MTLSAddr, servertest.ServerID)
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	root, err := server.CreateDelegation(servertest.Ctx(t), agentclient.CreateRequest{
		UserToken: env.AliceToken(t), Agent: agent.ID(), Scopes: []string{"campaigns:read", "crm:write"}, TTL: time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	tr, err := agent.Transport(servertest.Verifier, "")
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: tr}
	url := "https://" + svc.Addr().String() + "/whoami"

	status, body := call(t, agentclient.WithDelegation(servertest.Ctx(t), root.ID), client, url)
	var a whoami.Answer
	if err := json.Unmarshal([]byte(body), &a); status != 200 || err != nil {
		t.Fatalf("%d %s", status, body)
	}
	want := whoami.Answer{
		Agent:  servertest.Orchestrator.String(),
		User:   whoami.User{Issuer: env.IDP.URL(), Subject: "alice", Email: "alice@example.com"},
		Scopes: []string{"campaigns:read", "crm:write"},
		Delegation: whoami.Delegation{ID: root.ID.String(), Root: root.ID.String(), Chain: []string{servertest.Orchestrator.String()},
			ExpiresAt: root.ExpiresAt.UTC().Truncate(time.Second)},
	}
	gotJSON, _ := json.Marshal(a)
	wantJSON, _ := json.Marshal(want)
	if string(gotJSON) != string(wantJSON) {
		t.Fatalf("answer\n got %s\nwant %s", gotJSON, wantJSON)
	}

	// No delegation: the agent alone is not enough for this service.
	if status, body := call(t, servertest.Ctx(t), client, url); status != 401 || !strings.Contains(body, "verify: no token") {
		t.Fatalf("plain call: %d %s", status, body)
	}

	// Revoked: the agent's cached token is refused once the watch delivers
	// the revocation (bounded wait on a real stream).
	if _, err := server.RevokeDelegation(servertest.Ctx(t), root.ID, "user left"); err != nil {
		t.Fatal(err)
	}
	ctx := agentclient.WithDelegation(servertest.Ctx(t), root.ID)
	for {
		status, body := call(t, ctx, client, url)
		if status == 401 && strings.Contains(body, "revoked") {
			break
		}
		if status != 200 {
			t.Fatalf("after revocation: %d %s", status, body)
		}
		select {
		case <-ctx.Done():
			t.Fatal("the revocation never reached the service")
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func TestStartRequiresRevocation(t *testing.T) {
	tests := []struct {
		name   string
		config whoami.Config
		want   string
	}{
		{"no server", whoami.Config{Listen: "127.0.0.1:0"},
			"whoami: invalid config: the agentid-server address is required to follow revocations (opt out with InsecureNoRevocation)"},
		{"server without id", whoami.Config{Listen: "127.0.0.1:0", ServerAddr: "127.0.0.1:1"},
			"whoami: invalid config: agentid-server's SPIFFE ID is required with its address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svc, err := whoami.Start(t.Context(), tt.config)
			if err == nil {
				svc.Close()
				t.Fatal("started")
			}
			if err.Error() != tt.want {
				t.Fatalf("err = %v\nwant %s", err, tt.want)
			}
		})
	}
}

func TestStartInsecureNoRevocation(t *testing.T) {
	env := servertest.Start(t)
	auth := agentclienttest.NewAuthority(t, agentclienttest.AuthorityConfig{CA: env.CA})
	svc, err := whoami.Start(servertest.Ctx(t), whoami.Config{
		WorkloadAPIAddr: auth.Serve(t, servertest.Verifier).Addr, Listen: "127.0.0.1:0", InsecureNoRevocation: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	svc.Close()
}
