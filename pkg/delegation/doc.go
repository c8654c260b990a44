// Package delegation is agentid's domain model: who lets which agent act for
// whom, with what authority, until when. It does no I/O.
//
// A Delegation is a grant from a user (an OIDC issuer and subject) to an agent
// (a SPIFFE ID): the agent may act for the user with a set of scopes until an
// expiry, for a stated intent. A root delegation is made from the user's own
// token; a sub-delegation is made by the agent of a parent delegation for
// another agent, for the same user.
//
// Every value that comes from outside is parsed by a validating constructor:
//
//	id, err := delegation.ParseID("dlg_01jd3x...")
//	scopes, err := delegation.ParseScopes([]string{"campaigns:read"})
//	user, err := delegation.NewUser("https://idp.example.com", "alice", "alice@example.com")
//
// The invariants that keep authority narrowing at every hop are functions, so
// the server, the store and the tests check the same rules:
//
//	root, err := delegation.NewRoot(delegation.RootParams{...})
//	child, err := delegation.NewChild(root, delegation.ChildParams{...})
//
// NewChild refuses a child whose scopes are not a subset of the parent's,
// whose expiry is after the parent's, whose depth exceeds the root's maximum,
// or whose parent is revoked or expired. The chain of a child is always the
// parent's chain followed by the child's agent.
package delegation
