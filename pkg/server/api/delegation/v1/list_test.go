package delegation_test

import (
	"strings"
	"testing"
	"time"

	delegationapi "github.com/agentid/agentid/pkg/server/api/delegation/v1"
	"github.com/agentid/agentid/pkg/server/servertest"
	delegationv1 "github.com/agentid/agentid/proto/agentid/delegation/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func ids(ds []*delegationv1.Delegation) string {
	var out []string
	for _, d := range ds {
		out = append(out, d.Id)
	}
	return strings.Join(out, " ")
}

// TestListDelegations: the filters, the states as of now (expired is told
// from active by the clock), paging, and what a non-reader may ask.
func TestListDelegations(t *testing.T) {
	e := newEnv(t)
	front, loc, orch := e.As(t, frontend), e.Local(t), e.As(t, orchestrator)
	tok := e.AliceToken(t)
	short := create(t, front, tok, orchestrator.String(), time.Minute, "campaigns:read")
	long := create(t, front, tok, orchestrator.String(), time.Hour, "campaigns:read", "compliance:check")
	child := sub(t, orch, long.Id, analyst.String(), time.Hour, "campaigns:read")
	revoked := create(t, front, tok, orchestrator.String(), time.Hour, "campaigns:read")
	if _, err := loc.Delegations.RevokeDelegation(ctxT(t), &delegationv1.RevokeDelegationRequest{Id: revoked.Id}); err != nil {
		t.Fatal(err)
	}
	e.Clock.Add(2 * time.Minute) // short expires

	list := func(c servertest.Clients, req *delegationv1.ListDelegationsRequest) string {
		t.Helper()
		resp, err := c.Delegations.ListDelegations(ctxT(t), req)
		if err != nil {
			t.Fatal(err)
		}
		return ids(resp.Delegations)
	}
	alice := &delegationv1.ListDelegationsRequest{PrincipalIssuer: e.IDP.URL(), PrincipalSubject: "alice"}
	for name, tt := range map[string]struct {
		c    servertest.Clients
		req  *delegationv1.ListDelegationsRequest
		want string
	}{
		"all":                     {loc, &delegationv1.ListDelegationsRequest{}, ids([]*delegationv1.Delegation{short, long, child, revoked})},
		"active":                  {loc, &delegationv1.ListDelegationsRequest{State: delegationv1.State_STATE_ACTIVE}, long.Id + " " + child.Id},
		"expired":                 {loc, &delegationv1.ListDelegationsRequest{State: delegationv1.State_STATE_EXPIRED}, short.Id},
		"revoked":                 {loc, &delegationv1.ListDelegationsRequest{State: delegationv1.State_STATE_REVOKED}, revoked.Id},
		"by agent":                {loc, &delegationv1.ListDelegationsRequest{AgentId: analyst.String()}, child.Id},
		"by user":                 {loc, alice, ids([]*delegationv1.Delegation{short, long, child, revoked})},
		"another user":            {loc, &delegationv1.ListDelegationsRequest{PrincipalIssuer: e.IDP.URL(), PrincipalSubject: "bob"}, ""},
		"agent, its own":          {orch, &delegationv1.ListDelegationsRequest{State: delegationv1.State_STATE_ACTIVE}, long.Id},
		"agent asking for others": {orch, &delegationv1.ListDelegationsRequest{AgentId: analyst.String()}, ""},
	} {
		if got := list(tt.c, tt.req); got != tt.want {
			t.Errorf("%s: %q, want %q", name, got, tt.want)
		}
	}

	var pages []string
	req := &delegationv1.ListDelegationsRequest{PageSize: 3}
	for {
		resp, err := loc.Delegations.ListDelegations(ctxT(t), req)
		if err != nil {
			t.Fatal(err)
		}
		pages = append(pages, ids(resp.Delegations))
		if req.PageToken = resp.NextPageToken; req.PageToken == "" {
			break
		}
	}
	if got, want := strings.Join(pages, " | "), short.Id+" "+long.Id+" "+child.Id+" | "+revoked.Id; got != want {
		t.Fatalf("pages %q, want %q", got, want)
	}

	for name, tt := range map[string]struct {
		req *delegationv1.ListDelegationsRequest
		msg string
	}{
		"half a principal":   {&delegationv1.ListDelegationsRequest{PrincipalSubject: "alice"}, "principal_issuer, principal_subject: set both or neither"},
		"malformed agent":    {&delegationv1.ListDelegationsRequest{AgentId: "agent/x"}, "agent_id: scheme is missing or invalid"},
		"unknown state":      {&delegationv1.ListDelegationsRequest{State: 9}, "state: unknown value 9"},
		"negative page size": {&delegationv1.ListDelegationsRequest{PageSize: -1}, "page_size: must not be negative"},
	} {
		_, err := loc.Delegations.ListDelegations(ctxT(t), tt.req)
		if st, _ := status.FromError(err); st.Code() != codes.InvalidArgument || st.Message() != tt.msg {
			t.Errorf("%s: %v, want %q", name, err, tt.msg)
		}
	}
	if _, err := loc.Delegations.ListDelegations(ctxT(t), &delegationv1.ListDelegationsRequest{PageToken: "x"}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("foreign page token: %v", err)
	}
}

func TestNewRequires(t *testing.T) {
	if _, err := delegationapi.New(delegationapi.Config{}); err == nil || err.Error() != "delegation: store, user authenticator, policy and agents are required" {
		t.Fatalf("New(Config{}) = %v", err)
	}
}
