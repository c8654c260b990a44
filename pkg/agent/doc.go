// Package agent is the declared agent: the one type that the server's
// configuration produces and that the API handlers, the reconciler (which
// keeps the agent's SPIRE registration entry) and the delegation policy (as
// its narrow policy.Agent view) read.
//
// An Agent says who the agent is in SPIRE (SPIFFEID, ParentID, Selectors,
// SVID lifetimes) and what it may ever do in agentid (ScopeCeiling,
// SubAgents). A Set holds the declared agents, refusing two of one name or
// one SPIFFE ID and a sub-agent that is not declared, and answers the
// lookups the handlers make on every request:
//
//	set, err := agent.NewSet(agents)
//	a, ok := set.ByID(id)
//	if ok && a.MaySubDelegateTo(child) { ... }
//
// Removing a declaration disables the agent: the reconciler deletes its
// SPIRE entry and agentid-server revokes every active delegation it holds
// when it starts.
package agent
