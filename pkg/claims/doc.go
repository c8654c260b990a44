// Package claims is the schema of what agentid adds to a JWT-SVID: the
// delegating user, the delegated scopes and the delegation chain. The composer
// plugin encodes it, verifiers and the CLI decode it; nothing else should know
// the claim names.
//
// A delegated JWT-SVID stays a valid JWT-SVID (sub is the agent, aud the
// target, exp required) and adds, all as strings or lists of strings because
// Istio matches only those and SPIRE turns numbers into floats:
//
//	"principal":  {"iss": "https://idp.example.com", "sub": "alice", "email": "alice@example.com"},
//	"scope":      "campaigns:read compliance:check",
//	"delegation": {"version": "1", "id": "dlg_…", "root": "dlg_…",
//	               "chain": ["spiffe://example.org/agent/orchestrator", "spiffe://example.org/agent/market-analysis"],
//	               "expires_at": "2026-11-26T23:00:00Z"}
//
// chain lists the agents from the first to the current one, so its last entry
// equals sub. There is deliberately no top-level "act": RFC 8693 puts the user
// in sub and the actor in act, while a JWT-SVID's sub must be the agent.
// Mapped to RFC 8693: sub = principal.sub, the current actor = sub, prior
// actors = delegation.chain[:len-1].
//
// Encode with FromDelegation and Claims.Map; decode the claims map of a
// verified token (go-spiffe's jwtsvid.SVID.Claims) with Decode. An agent asks
// for a delegated token by adding the marker audience MarkerPrefix+id, which
// SplitAudience finds and the composer strips.
//
// # Access tokens
//
// agentid-server's OAuth token endpoint (pkg/authserver) turns a delegated
// JWT-SVID into an RFC 9068 access token for services that speak OAuth, not
// SPIFFE. There the standard meanings hold: sub is the user (SubjectOf:
// "<issuer>#<subject>", unique across issuers), client_id and act.sub the
// current agent, act.act… the agents before it (RFC 8693 §4.1), aud the
// resource, cnf.x5t#S256 the agent's certificate when bound. agentid adds
// the same "principal" object as the JWT-SVID and a smaller "delegation"
// object ({"version", "id", "root"}). Numbers are JSON numbers: the token
// does not pass through SPIRE. AccessToken encodes and DecodeAccessToken
// decodes them.
package claims
