// Package extauthz is an Envoy ext_authz v3 authorization server (gRPC) that
// checks an agent call's two identities, the agent's X509-SVID and the
// delegated JWT-SVID, and decides with CEL route rules on both together.
// cmd/agentid-extauthz runs it; Envoy and Istio (a CUSTOM authorization
// provider) call it.
//
// # What it reads
//
// Envoy terminates the agent's mTLS connection and sends a CheckRequest.
// The peer is attributes.source.principal, which Envoy sets to the URI SAN of
// the verified downstream certificate: the agent's SPIFFE ID. The token is
// the request's "authorization: Bearer" header. Both go to
// verify.Verifier.Verify, so everything pkg/verify checks applies: the
// signature, the audience, sub == peer, the delegation claims, revocation.
//
// # Rules
//
// Rules are tried in order. The first whose match (a CEL expression over
// request) is true decides: its allow expression (over every variable)
// allows or denies. No matching rule denies: deny by default.
//
//	rules:
//	  - name: crm-write
//	    match: 'request.path.startsWith("/crm/") && request.method != "GET"'
//	    allow: 'agent == "spiffe://example.org/agent/orchestrator" && "crm:write" in scopes && user.iss == "https://idp.example.com"'
//
// Variables:
//
//	request     method, scheme, host, path (normalised, without query), raw_path (as sent),
//	            query, headers (lower-case keys)
//	agent       the agent's SPIFFE ID (string)
//	user        iss, sub, email of the delegating user ("" for plain tokens)
//	scopes      list of delegated scopes
//	delegation  id, root, chain (list of SPIFFE IDs, first to current), expires_at (timestamp)
//	delegated   false for a plain JWT-SVID (only with AllowPlainTokens)
//
// Field names are checked when the rules compile: a misspelt one stops the
// server from starting. An expression that fails at run time (a missing
// header key) denies.
//
// request.path is normalised (NormalizePath: percent-encoded unreserved
// characters decoded, slashes merged, dot segments removed) so that a rule
// about "/admin/" holds for "//admin/", "/x/../admin/" and "/%61dmin/"; a
// path with no single reading (an encoded "/" or "", a "", ";", a byte
// encoded twice, a malformed escape, a byte not allowed in a path) is
// refused with 400 before any rule runs. Turn Envoy's own normalisation on
// as well (HttpConnectionManager normalize_path: true, merge_slashes: true,
// path_with_escaped_slashes_action: REJECT_REQUEST or KEEP_UNCHANGED; in
// Istio meshConfig.pathNormalization MERGE_SLASHES), so that the route
// Envoy picks and the path the upstream gets are the one the rules saw.
//
// # Answers
//
// On allow, the upstream request gets x-agentid-agent, x-agentid-user
// (issuer#subject), x-agentid-scope, x-agentid-delegation and
// x-agentid-chain (comma-separated); copies the client sent are overwritten
// or removed, and so is any other x-agentid-* header it sent (with '-' or
// '_'). On deny, Envoy answers the client with 401 and a
// WWW-Authenticate challenge (no, bad or revoked token; token not the peer's),
// 403 (a rule refused) or 503 (revocation status unknown), and a JSON body
// with the reason. Refusals are denials, never gRPC errors, so Envoy's
// failure_mode_allow never turns them into an allow.
package extauthz
