package delegation_test

import (
	"testing"
	"time"

	"github.com/agentid/agentid/pkg/oidcauth/oidctest"
	"github.com/agentid/agentid/pkg/server/servertest"
	delegationv1 "github.com/agentid/agentid/proto/agentid/delegation/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestRevokeWithUserToken: a user's fresh token says she agrees, not who is
// asking. An agent handed alice's token (to create its own delegation) must
// not use it to revoke her other delegations; the user page (a user client)
// and the local socket may revoke any of hers with it.
func TestRevokeWithUserToken(t *testing.T) {
	e := newEnv(t)
	front, orch := e.As(t, frontend), e.As(t, orchestrator)
	tok := e.AliceToken(t)
	bob := e.IDP.Token(t, oidctest.Claims{Subject: "bob", Audience: audience, Groups: []string{"marketing"}, IssuedAt: e.Clock.Now()})

	mine := create(t, front, tok, orchestrator.String(), time.Hour, "campaigns:read")
	child := sub(t, orch, mine.Id, analyst.String(), time.Hour, "campaigns:read")
	hers := create(t, front, tok, analyst.String(), time.Hour, "campaigns:read")
	other := create(t, front, tok, analyst.String(), time.Hour, "campaigns:read")

	for _, tc := range []struct {
		name    string
		caller  clients
		id      string
		token   string
		code    codes.Code
		msg     string
		revoked uint32
	}{
		{"agent with her token, her other delegation", orch, hers.Id, tok, codes.NotFound, "id: no such delegation", 0},
		{"stranger with her token", e.As(t, stranger), hers.Id, tok, codes.NotFound, "id: no such delegation", 0},
		{"sub-agent with her token, its parent", e.As(t, analyst), mine.Id, tok, codes.NotFound, "id: no such delegation", 0},
		{"user page without a token", e.As(t, servertest.UserPage), hers.Id, "", codes.NotFound, "id: no such delegation", 0},
		{"user page with bob's token", e.As(t, servertest.UserPage), hers.Id, bob, codes.NotFound, "id: no such delegation", 0},
		{"agent with her token, what it created", orch, child.Id, tok, codes.OK, "", 1},
		{"agent with her token, its own delegation", orch, mine.Id, tok, codes.OK, "", 1},
		{"user page with her token", e.As(t, servertest.UserPage), hers.Id, tok, codes.OK, "", 1},
		{"local socket with her token", e.Local(t), other.Id, tok, codes.OK, "", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := tc.caller.Delegations.RevokeDelegation(ctxT(t), &delegationv1.RevokeDelegationRequest{Id: tc.id, UserToken: tc.token})
			if st := status.Convert(err); st.Code() != tc.code || st.Message() != tc.msg {
				t.Fatalf("got %v %q, want %v %q", st.Code(), st.Message(), tc.code, tc.msg)
			}
			if err == nil && resp.RevokedCount != tc.revoked {
				t.Fatalf("revoked %d, want %d", resp.RevokedCount, tc.revoked)
			}
			got, err := e.Local(t).Delegations.GetDelegation(ctxT(t), &delegationv1.GetDelegationRequest{Id: tc.id})
			if err != nil {
				t.Fatal(err)
			}
			want := delegationv1.State_STATE_ACTIVE
			if tc.code == codes.OK {
				want = delegationv1.State_STATE_REVOKED
			}
			if got.Delegation.State != want {
				t.Fatalf("state %v, want %v", got.Delegation.State, want)
			}
		})
	}
	// Each refusal is a denied event naming the caller, and each revocation
	// with the token is the user's act.
	var denied, byUser int
	for _, ev := range exportEvents(t, e) {
		switch {
		case ev.Type.String() == "denied" && ev.Detail["rpc"] == "RevokeDelegation":
			denied++
		case ev.Type.String() == "revoked" && ev.Actor == "user:"+e.IDP.URL()+"#alice":
			byUser++
		}
	}
	if denied != 5 || byUser != 4 {
		t.Fatalf("denied %d (want 5), revoked by the user %d (want 4)", denied, byUser)
	}
}
