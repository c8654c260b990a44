package server

import (
	"slices"

	"github.com/agentid/agentid/pkg/delegation"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// access is the one place that says who may call what. The proto comments of
// each RPC state the same rules; handlers ask these methods and nothing else.
//
// Roles come from the config's access block. The local unix socket is an
// admin: its file permissions are the authentication, as for spire-server's
// own admin socket.
type access struct {
	admins       map[spiffeid.ID]bool
	verifiers    map[spiffeid.ID]bool
	auditReaders map[spiffeid.ID]bool
	// userClients act for the user who is at the keyboard (the user page,
	// the CLI over mTLS): with her fresh token they may revoke any of her
	// delegations.
	userClients map[spiffeid.ID]bool
}

func newAccess(admins, verifiers, auditReaders, userClients []spiffeid.ID) access {
	set := func(ids []spiffeid.ID) map[spiffeid.ID]bool {
		m := make(map[spiffeid.ID]bool, len(ids))
		for _, id := range ids {
			m[id] = true
		}
		return m
	}
	return access{admins: set(admins), verifiers: set(verifiers), auditReaders: set(auditReaders), userClients: set(userClients)}
}

func (a access) isAdmin(c Caller) bool { return c.Local || a.admins[c.ID] }

// isReader: admins and audit readers read agents, the audit log and every
// delegation.
func (a access) isReader(c Caller) bool { return a.isAdmin(c) || a.auditReaders[c.ID] }

// canSee: who may read one delegation. Everyone else gets NOT_FOUND, so ids
// cannot be probed.
func (a access) canSee(c Caller, d *delegation.Delegation) bool {
	if a.isReader(c) {
		return true
	}
	return !c.ID.IsZero() && (c.ID == d.CreatedBy || slices.Contains(d.Chain, c.ID))
}

// canSubDelegate: only the parent's agent, over mTLS. Nobody, admins
// included, may act as that agent.
func (a access) canSubDelegate(c Caller, parent *delegation.Delegation) bool {
	return !c.Local && c.ID == parent.Agent
}

// canRevoke: admins; the delegation's agent (dropping its own authority);
// the caller who created it or any of its ancestors (who created a branch may
// prune inside it).
func (a access) canRevoke(c Caller, d *delegation.Delegation, ancestors []*delegation.Delegation) bool {
	if a.isAdmin(c) {
		return true
	}
	if c.ID.IsZero() {
		return false
	}
	if c.ID == d.Agent || c.ID == d.CreatedBy {
		return true
	}
	for _, anc := range ancestors {
		if c.ID == anc.CreatedBy {
			return true
		}
	}
	return false
}

// canRevokeAsUser: who may revoke with the user's own fresh token (the
// handler checks that the token is hers and fresh). A token says which user
// agrees, not who is asking: an agent handed alice's token for one task must
// not use it to revoke her other delegations. So the token widens nothing for
// ordinary callers (they may revoke what canRevoke allows, recorded as the
// user's act); only admins (the local socket: the CLI on the host) and the
// configured user clients (the user page, the CLI over mTLS) revoke any
// delegation of the token's user.
func (a access) canRevokeAsUser(c Caller, d *delegation.Delegation, ancestors []*delegation.Delegation) bool {
	return a.isAdmin(c) || (!c.ID.IsZero() && a.userClients[c.ID]) || a.canRevoke(c, d, ancestors)
}

// canWatch: the composer (local socket) and admins see everything;
// configured verifiers only the deny list.
func (a access) canWatch(c Caller, revokedOnly bool) bool {
	return a.isAdmin(c) || (revokedOnly && a.verifiers[c.ID])
}

// canRecordIssuance: the composer on the local socket only, so no workload
// can write issuance records.
func (a access) canRecordIssuance(c Caller) bool { return c.Local }

// canPruneAudit: admins only. Pruning deletes history for good; the
// caller must hold a verified archive, which readers may make, but only
// admins decide the retention.
func (a access) canPruneAudit(c Caller) bool { return a.isAdmin(c) }
