//go:build e2e

package e2e_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/agentid/agentid/pkg/agentclient"
	"github.com/agentid/agentid/pkg/claims"
	"github.com/agentid/agentid/pkg/delegation"
	"github.com/agentid/agentid/pkg/server/servertest"
	delegationv1 "github.com/agentid/agentid/proto/agentid/delegation/v1"
	"github.com/agentid/agentid/test/harness"
	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
	"google.golang.org/protobuf/types/known/durationpb"
)

// TestE2EDeniedVersusUnavailable checks, against real SPIRE v1.13.3 with
// agentid's composer, what classify relies on: a composer refusal reaches
// the workload as Unavailable carrying the composer's text (so it is
// ErrDelegationDenied), and a SPIRE server that is down is ErrUnavailable.
//
//	test/tools/build.sh all
//	go test -tags e2e -run E2EDeniedVersusUnavailable ./e2e/   (in test/)
func TestE2EDeniedVersusUnavailable(t *testing.T) {
	env := servertest.Start(t)
	composer := harness.BuildProgram(t, "./cmd/agentid-composer")
	srv := harness.StartSPIREServer(t, harness.ServerOptions{CredentialComposer: &harness.ExternalPlugin{
		Name: "agentid", Cmd: composer, Data: fmt.Sprintf("agentid_socket_path = %q", env.LocalAddr),
	}})
	agent := harness.StartSPIREAgent(t, srv, harness.AgentOptions{})
	srv.CreateEntry(t, harness.Entry{
		SPIFFEID: servertest.Orchestrator, ParentID: agent.ID(), Selectors: []string{fmt.Sprintf("unix:uid:%d", os.Getuid())},
	})
	agent.WaitForX509SVID(t, servertest.Orchestrator, 20*time.Second)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	a, err := agentclient.New(ctx, agentclient.Config{WorkloadAPIAddr: agent.WorkloadAddr(), ID: servertest.Orchestrator})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	local := env.Local(t).Delegations
	resp, err := local.CreateDelegation(ctx, &delegationv1.CreateDelegationRequest{
		UserToken: env.AliceToken(t), AgentId: servertest.Orchestrator.String(), Scopes: []string{"campaigns:read"},
		Ttl: durationpb.New(time.Hour),
	})
	if err != nil {
		t.Fatal(err)
	}
	id := delegation.MustParseID(resp.Delegation.Id)

	// The composer's replica learns of the delegation through its watch.
	var tok agentclient.Token
	for {
		tok, err = a.Tokens().Token(ctx, id, "spiffe://example.org/svc/crm")
		if err == nil {
			break
		}
		if !errors.Is(err, agentclient.ErrDelegationDenied) && !errors.Is(err, agentclient.ErrUnavailable) || ctx.Err() != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	svid, err := jwtsvid.ParseInsecure(tok.Value, []string{"spiffe://example.org/svc/crm"})
	if err != nil {
		t.Fatal(err)
	}
	if c, err := claims.Decode(svid.Claims, servertest.Orchestrator); err != nil || c.ID != id {
		t.Fatalf("claims %+v, %v", c, err)
	}

	raw, err := workloadapi.New(ctx, workloadapi.WithAddr(agent.WorkloadAddr()))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	unknown := delegation.MustParseID("dlg_01jd0000000000000000000000")
	_, rawErr := raw.FetchJWTSVID(ctx, jwtsvid.Params{Subject: servertest.Orchestrator, Audience: "a", ExtraAudiences: []string{claims.Marker(unknown)}})
	t.Logf("SPIRE's answer for an unknown delegation: %v", rawErr)
	_, err = a.Tokens().Token(ctx, unknown, "spiffe://example.org/svc/crm")
	if !errors.Is(err, agentclient.ErrDelegationDenied) || !strings.HasSuffix(err.Error(), "composer: unknown delegation: "+unknown.String()) {
		t.Fatalf("unknown delegation: %v", err)
	}

	if _, err := local.RevokeDelegation(ctx, &delegationv1.RevokeDelegationRequest{Id: id.String(), Reason: "e2e"}); err != nil {
		t.Fatal(err)
	}
	// A new audience, so the SPIRE agent's own cache cannot answer.
	for i := 0; ; i++ {
		_, err = a.Tokens().Token(ctx, id, fmt.Sprintf("spiffe://example.org/svc/after-revoke-%d", i))
		if errors.Is(err, agentclient.ErrDelegationDenied) {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("revoked delegation still issued: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("revoked: %v", err)

	srv.Stop(t)
	_, rawErr = raw.FetchJWTSVID(ctx, jwtsvid.Params{Subject: servertest.Orchestrator, Audience: "b", ExtraAudiences: []string{claims.Marker(id)}})
	t.Logf("SPIRE's answer with the server down: %v", rawErr)
	_, err = a.Tokens().Token(ctx, id, "spiffe://example.org/svc/server-down")
	if !errors.Is(err, agentclient.ErrUnavailable) {
		t.Fatalf("server down: %v", err)
	}
}
