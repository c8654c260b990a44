package authz_test

import (
	"strings"
	"testing"
	"time"

	"github.com/agentid/agentid/pkg/server/servertest"
	agentv1 "github.com/agentid/agentid/proto/agentid/agent/v1"
	auditv1 "github.com/agentid/agentid/proto/agentid/audit/v1"
	delegationv1 "github.com/agentid/agentid/proto/agentid/delegation/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

// TestAllowedCallers checks the other side of the access rules: each caller
// the proto names is let through.
func TestAllowedCallers(t *testing.T) {
	e := newEnv(t)
	front, orch, anal := e.As(t, frontend), e.As(t, orchestrator), e.As(t, analyst)
	admin, auditor, strange := e.As(t, servertest.Admin), e.As(t, servertest.AuditReader), e.As(t, stranger)

	// The agent asks for its own delegation (peer == agent), without the
	// rule naming it.
	own := create(t, orch, e.AliceToken(t), orchestrator.String(), time.Hour, "campaigns:read", "compliance:check")
	if own.CreatedBy != orchestrator.String() {
		t.Fatalf("created_by %q", own.CreatedBy)
	}
	child := sub(t, orch, own.Id, analyst.String(), time.Hour, "campaigns:read")

	// A chain member reads the child; the child's agent reads it too.
	for name, c := range map[string]clients{"parent agent": orch, "agent": anal, "admin": admin, "audit reader": auditor} {
		if _, err := c.Delegations.GetDelegation(ctxT(t), &delegationv1.GetDelegationRequest{Id: child.Id}); err != nil {
			t.Fatalf("%s: get: %v", name, err)
		}
	}

	// Non-readers list only what they hold; readers list everything.
	listIDs := func(c clients, agent string) string {
		resp, err := c.Delegations.ListDelegations(ctxT(t), &delegationv1.ListDelegationsRequest{AgentId: agent})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, d := range resp.Delegations {
			ids = append(ids, d.Id)
		}
		return strings.Join(ids, " ")
	}
	if got := listIDs(anal, ""); got != child.Id {
		t.Fatalf("analyst lists %q, want its own %q", got, child.Id)
	}
	if got := listIDs(anal, orchestrator.String()); got != "" {
		t.Fatalf("analyst lists the orchestrator's: %q", got)
	}
	if got := listIDs(strange, ""); got != "" {
		t.Fatalf("stranger lists %q", got)
	}
	if got := listIDs(auditor, ""); got != own.Id+" "+child.Id {
		t.Fatalf("auditor lists %q", got)
	}

	// Agents and the audit log: admins and audit readers, not others.
	for name, c := range map[string]clients{"admin": admin, "audit reader": auditor, "local": e.Local(t)} {
		if _, err := c.Agents.ListAgents(ctxT(t), &agentv1.ListAgentsRequest{}); err != nil {
			t.Fatalf("%s: list agents: %v", name, err)
		}
		if _, err := c.Audit.ListEvents(ctxT(t), &auditv1.ListEventsRequest{}); err != nil {
			t.Fatalf("%s: list events: %v", name, err)
		}
	}
	if _, err := orch.Agents.GetAgent(ctxT(t), &agentv1.GetAgentRequest{Key: &agentv1.GetAgentRequest_Name{Name: "writer"}}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("agent reading the registry: %v", err)
	}

	// The child's agent drops its own authority.
	if r, err := anal.Delegations.RevokeDelegation(ctxT(t), &delegationv1.RevokeDelegationRequest{Id: child.Id}); err != nil || r.RevokedCount != 1 {
		t.Fatalf("agent revoking its own: %v %v", r, err)
	}
	// The creator of an ancestor prunes inside its branch: the front end
	// created root2, the orchestrator created child2; the front end revokes child2.
	root2 := create(t, front, e.AliceToken(t), orchestrator.String(), time.Hour, "campaigns:read")
	child2 := sub(t, orch, root2.Id, analyst.String(), time.Hour, "campaigns:read")
	if r, err := front.Delegations.RevokeDelegation(ctxT(t), &delegationv1.RevokeDelegationRequest{Id: child2.Id}); err != nil || r.RevokedCount != 1 {
		t.Fatalf("ancestor's creator revoking: %v %v", r, err)
	}
	// An mTLS admin revokes anything.
	if r, err := admin.Delegations.RevokeDelegation(ctxT(t), &delegationv1.RevokeDelegationRequest{Id: root2.Id}); err != nil || r.RevokedCount != 1 {
		t.Fatalf("admin revoking: %v %v", r, err)
	}
	// Only the parent's agent sub-delegates; another agent does not even see it.
	if _, err := anal.Delegations.CreateSubDelegation(ctxT(t), &delegationv1.CreateSubDelegationRequest{
		ParentId: own.Id, AgentId: orchestrator.String(), Scopes: []string{"campaigns:read"}, Ttl: durationpb.New(time.Minute),
	}); status.Code(err) != codes.NotFound {
		t.Fatalf("non-agent sub-delegating: %v", err)
	}
}
