package authz

import (
	"testing"

	"github.com/agentid/agentid/pkg/delegation"
	"github.com/agentid/agentid/pkg/server/api"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// TestAccess is the rules as a table: each role against each question.
func TestAccess(t *testing.T) {
	id := func(p string) spiffeid.ID { return spiffeid.RequireFromString("spiffe://example.org/" + p) }
	admin, verifier, reader, page := id("ops/admin"), id("svc/crm"), id("ops/auditor"), id("app/user-page")
	front, orch, sub, stranger := id("app/front"), id("agent/orch"), id("agent/sub"), id("app/stranger")
	a := New(Config{Admins: []spiffeid.ID{admin}, Verifiers: []spiffeid.ID{verifier}, AuditReaders: []spiffeid.ID{reader}, UserClients: []spiffeid.ID{page}})
	root := &delegation.Delegation{Agent: orch, CreatedBy: front, Chain: []spiffeid.ID{orch}}
	child := &delegation.Delegation{Agent: sub, CreatedBy: orch, Chain: []spiffeid.ID{orch, sub}}
	local := api.Caller{Local: true, UID: 0}
	as := func(i spiffeid.ID) api.Caller { return api.Caller{ID: i} }
	nobody := api.Caller{}

	tests := []struct {
		name string
		got  bool
		want bool
	}{
		{"local is admin", a.IsAdmin(local), true},
		{"admin is admin", a.IsAdmin(as(admin)), true},
		{"reader is not admin", a.IsAdmin(as(reader)), false},
		{"reader reads", a.IsReader(as(reader)), true},
		{"verifier does not read", a.IsReader(as(verifier)), false},
		{"creator sees", a.CanSee(as(front), root), true},
		{"chain member sees", a.CanSee(as(orch), child), true},
		{"stranger does not see", a.CanSee(as(stranger), child), false},
		{"nobody does not see", a.CanSee(nobody, child), false},
		{"parent's agent sub-delegates", a.CanSubDelegate(as(orch), root), true},
		{"local does not sub-delegate", a.CanSubDelegate(local, root), false},
		{"admin does not sub-delegate", a.CanSubDelegate(as(admin), root), false},
		{"admin revokes", a.CanRevoke(as(admin), child, []*delegation.Delegation{root}), true},
		{"agent revokes its own", a.CanRevoke(as(sub), child, []*delegation.Delegation{root}), true},
		{"creator revokes", a.CanRevoke(as(orch), child, []*delegation.Delegation{root}), true},
		{"ancestor's creator revokes", a.CanRevoke(as(front), child, []*delegation.Delegation{root}), true},
		{"stranger does not revoke", a.CanRevoke(as(stranger), child, []*delegation.Delegation{root}), false},
		{"nobody does not revoke", a.CanRevoke(nobody, child, nil), false},
		{"user page revokes with the user's token", a.CanRevokeAsUser(as(page), child, nil), true},
		{"local revokes with the user's token", a.CanRevokeAsUser(local, child, nil), true},
		{"the token widens nothing for a stranger", a.CanRevokeAsUser(as(stranger), child, nil), false},
		{"the agent still may with the token", a.CanRevokeAsUser(as(sub), child, nil), true},
		{"nobody does not revoke with a token", a.CanRevokeAsUser(nobody, child, nil), false},
		{"local watches", a.CanWatch(local, false), true},
		{"verifier watches revocations", a.CanWatch(as(verifier), true), true},
		{"verifier does not watch grants", a.CanWatch(as(verifier), false), false},
		{"reader does not watch", a.CanWatch(as(reader), true), false},
		{"local records issuance", a.CanRecordIssuance(local), true},
		{"admin over mTLS does not record issuance", a.CanRecordIssuance(as(admin)), false},
		{"admin prunes", a.CanPruneAudit(as(admin)), true},
		{"reader does not prune", a.CanPruneAudit(as(reader)), false},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s: got %v", tt.name, tt.got)
		}
	}
}
