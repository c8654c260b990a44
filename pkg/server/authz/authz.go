// Package authz is the one place that says who may call what on
// agentid-server. The proto comment of each RPC states the same rules; the
// handlers ask an Access and nothing else.
package authz

import (
	"github.com/agentid/agentid/pkg/server/api"
	"slices"

	"github.com/agentid/agentid/pkg/delegation"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// Access holds the roles of the config's access block and answers, per
// request, whether its caller may do what it asks. The local unix socket is an
// admin: its file permissions are the authentication, as for spire-server's
// own admin socket.
type Access struct {
	admins       map[spiffeid.ID]bool
	verifiers    map[spiffeid.ID]bool
	auditReaders map[spiffeid.ID]bool
	// userClients act for the user who is at the keyboard (the user page,
	// the CLI over mTLS): with her fresh token they may revoke any of her
	// delegations.
	userClients map[spiffeid.ID]bool
}

// Config names the callers that hold a role over mTLS.
type Config struct {
	// Admins may do over mTLS what the local socket may: revoke any
	// delegation, read agents and audit, prune the audit log.
	Admins []spiffeid.ID
	// Verifiers may watch revocations (WatchDelegations with revoked_only).
	Verifiers []spiffeid.ID
	// AuditReaders may read agents, the audit log and every delegation.
	AuditReaders []spiffeid.ID
	// UserClients may revoke any delegation of a user with her fresh token
	// (the user page, the CLI over mTLS); see CanRevokeAsUser.
	UserClients []spiffeid.ID
}

// New returns the Access of c.
func New(c Config) Access {
	set := func(ids []spiffeid.ID) map[spiffeid.ID]bool {
		m := make(map[spiffeid.ID]bool, len(ids))
		for _, id := range ids {
			m[id] = true
		}
		return m
	}
	return Access{admins: set(c.Admins), verifiers: set(c.Verifiers), auditReaders: set(c.AuditReaders), userClients: set(c.UserClients)}
}

// IsAdmin reports whether c administers the server: the local socket or a
// configured admin.
func (a Access) IsAdmin(c api.Caller) bool { return c.Local || a.admins[c.ID] }

// IsReader reports whether c reads agents, the audit log and every
// delegation: admins and audit readers do.
func (a Access) IsReader(c api.Caller) bool { return a.IsAdmin(c) || a.auditReaders[c.ID] }

// CanSee reports whether c may read d. Everyone else gets NOT_FOUND, so ids
// cannot be probed.
func (a Access) CanSee(c api.Caller, d *delegation.Delegation) bool {
	if a.IsReader(c) {
		return true
	}
	return !c.ID.IsZero() && (c.ID == d.CreatedBy || slices.Contains(d.Chain, c.ID))
}

// CanSubDelegate reports whether c may sub-delegate from the parent: only the
// parent's agent, over mTLS. Nobody, admins included, may act as that agent.
func (a Access) CanSubDelegate(c api.Caller, parent *delegation.Delegation) bool {
	return !c.Local && c.ID == parent.Agent
}

// CanRevoke reports whether c may revoke the delegation: admins; the
// delegation's agent (dropping its own authority); the caller who created it
// or any of its ancestors (who created a branch may prune inside it).
func (a Access) CanRevoke(c api.Caller, d *delegation.Delegation, ancestors []*delegation.Delegation) bool {
	if a.IsAdmin(c) {
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

// CanRevokeAsUser reports who may revoke with the user's own fresh token (the
// handler checks that the token is hers and fresh). A token says which user
// agrees, not who is asking: an agent handed alice's token for one task must
// not use it to revoke her other delegations. So the token widens nothing for
// ordinary callers (they may revoke what CanRevoke allows, recorded as the
// user's act); only admins (the local socket: the CLI on the host) and the
// configured user clients (the user page, the CLI over mTLS) revoke any
// delegation of the token's user.
func (a Access) CanRevokeAsUser(c api.Caller, d *delegation.Delegation, ancestors []*delegation.Delegation) bool {
	return a.IsAdmin(c) || (!c.ID.IsZero() && a.userClients[c.ID]) || a.CanRevoke(c, d, ancestors)
}

// CanWatch reports whether c may watch delegations: the composer (local
// socket) and admins see everything; configured verifiers only the deny list.
func (a Access) CanWatch(c api.Caller, revokedOnly bool) bool {
	return a.IsAdmin(c) || (revokedOnly && a.verifiers[c.ID])
}

// CanRecordIssuance reports whether c may record issuances: the composer on
// the local socket only, so no workload can write issuance records.
func (a Access) CanRecordIssuance(c api.Caller) bool { return c.Local }

// CanPruneAudit reports whether c may prune the audit log: admins only.
// Pruning deletes history for good; the caller must hold a verified archive,
// which readers may make, but only admins decide the retention.
func (a Access) CanPruneAudit(c api.Caller) bool { return a.IsAdmin(c) }
