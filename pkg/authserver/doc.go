// Package authserver makes agentid-server an OAuth 2.0 authorization server,
// so that services that do not speak SPIFFE (MCP servers, APIs that accept
// OAuth access tokens) can read a delegation: who the user is, which agents
// act for them, with which scopes, until when.
//
// # Endpoints
//
// Handler serves, for an issuer https://agentid.example.com:
//
//	GET  /.well-known/oauth-authorization-server   RFC 8414 metadata
//	GET  /jwks.json                                 the ES256 keys tokens are signed with
//	POST /token                                     RFC 7523 jwt-bearer grant, RFC 8693 token exchange
//	POST /introspect                                RFC 7662 introspection
//
// An issuer with a path (https://host/oauth) serves the metadata at
// /.well-known/oauth-authorization-server/oauth (RFC 8414 §3.1) and the
// endpoints below /oauth.
//
// # The grant
//
// An agent fetches a delegated JWT-SVID from SPIRE with audience [the
// issuer, urn:agentid:delegation:<id>] (agentid-composer strips the marker
// and adds the claims) and posts it:
//
//	POST /token
//	Content-Type: application/x-www-form-urlencoded
//
//	grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer
//	&assertion=<the JWT-SVID>
//	&resource=https://mcp.example.com/mcp      (RFC 8707; required, a registered resource)
//	&scope=campaigns:read                      (optional)
//
// The server verifies the assertion with pkg/verify (signature by the trust
// domain's JWT authority, aud = the issuer, time, well-formed delegation
// claims), reads the delegation and the root of its chain from the store
// (both active now, the delegation the assertion's agent's and user's),
// grants scope = asked ∩ delegation ∩ the resource's allowed scopes (all of
// the last two when none is asked; asking for more is invalid_scope), and
// returns an RFC 9068 access token whose exp is at most the resource's TTL,
// the configured maximum (default 5 minutes) and the delegation's expiry.
//
// Client authentication is RFC 8705 tls_client_auth with the agent's
// X509-SVID (client id = its SPIFFE ID), or none: the assertion alone
// authenticates the agent (RFC 7523 §3.1). With a certificate, the
// assertion's sub must be the certificate's SPIFFE ID and the token is bound
// to the certificate (cnf.x5t#S256); the handler verifies the certificate
// against Config.X509Bundles itself, whatever the listener checked (the
// outcome for one chain is remembered for at most 30 seconds, so a CA
// removed from the bundle stops being honoured within that; assertions are
// checked in full on every grant). A listener should request client
// certificates, not require them.
//
// # Token exchange
//
// An agent holding authority for a user trades it for a narrower token
// (RFC 8693):
//
//	grant_type=urn:ietf:params:oauth:grant-type:token-exchange
//	&subject_token=<the agent's delegated JWT-SVID, or an access token of this server>
//	&subject_token_type=urn:ietf:params:oauth:token-type:jwt   (or …:access_token)
//	&resource=https://crm.example.com                          (required, registered)
//	&scope=campaigns:read                                      (optional, only narrows)
//	&actor_token=<another agent's JWT-SVID, audience the issuer> (optional)
//	&actor_token_type=urn:ietf:params:oauth:token-type:jwt
//
// The subject token stands for its agent A under delegation D (read from the
// store: active now, or the exchange is refused). An access token is a
// bearer credential for its resource, not for this server, so only A may
// exchange one, over mTLS (with the certificate it is bound to, if bound): a
// resource server that received it cannot trade it for tokens elsewhere. A
// delegated JWT-SVID (audience this issuer) may be presented by A or handed
// to the next agent.
//
// Without an actor, the answer is a token of D for A for the resource, scope
// ⊆ the subject token's ∩ the resource's, bound to A's certificate when A
// presented it. With an actor B (the actor token's agent, or the client
// certificate's when that is not A) it is a sub-delegation under the rules
// of CreateSubDelegation (Config.Agents: B is a declared sub-agent of A,
// scope within B's ceiling, the chain within the root's max_depth, no agent
// twice): the child delegation is stored with a sub_delegated audit event
// (Detail endpoint=token_exchange), lives exactly as long as the token, and
// the token names B in client_id and act with A (and A's predecessors)
// nested inside; it is bound to B's certificate when B presented the
// request. A client certificate that is neither A's nor B's is refused.
// Revoking D or its root refuses every later exchange below it, and the
// exchanged tokens turn inactive at introspection. Invalid or unacceptable
// subject and actor tokens are invalid_request (RFC 8693 §2.2.2); the
// answer carries issued_token_type …:access_token.
//
// The user's own token as subject_token (a front end delegating in one
// step) is not accepted yet: that path is CreateDelegation.
//
// # The access token
//
// A JWT with typ at+jwt, signed ES256 by agentid-server's own keys
// (pkg/authserver/keyring, rotated with overlap):
//
//	{
//	  "iss": "https://agentid.example.com",
//	  "sub": "https://idp.example.com#alice",
//	  "aud": "https://mcp.example.com/mcp",
//	  "client_id": "spiffe://example.org/agent/market-analysis",
//	  "act": {"sub": "spiffe://example.org/agent/market-analysis",
//	          "act": {"sub": "spiffe://example.org/agent/orchestrator"}},
//	  "scope": "campaigns:read compliance:check",
//	  "iat": 1795694400, "exp": 1795694700, "jti": "…",
//	  "cnf": {"x5t#S256": "…"},
//	  "principal": {"iss": "https://idp.example.com", "sub": "alice", "email": "alice@example.com"},
//	  "delegation": {"version": "1", "id": "dlg_…", "root": "dlg_…"}
//	}
//
// sub is "<user's issuer>#<user's subject>", unique across the OIDC issuers
// agentid-server accepts (claims.SubjectOf says why it cannot collide);
// act nests the agents as RFC 8693 §4.1 orders them, the current one
// outermost. pkg/claims documents every claim.
//
// # Revocation: introspect or trust the TTL
//
// Introspection answers active:false for a token whose delegation (or the
// root of its chain) is revoked from the next call on. A resource server
// that must stop honouring a revoked delegation at once introspects every
// call (or caches the answer for seconds); one that can accept a revoked
// delegation's calls until the token expires (at most the resource's TTL,
// 5 minutes by default) verifies the JWT locally against the JWKS and never
// calls back. Resource servers authenticate to introspection with HTTP Basic
// (client id = the resource URI, secret = Resource.IntrospectionSecret,
// form-encoded first as RFC 6749 §2.3.1 says) or an X509-SVID; a resource
// learns only of tokens for itself.
//
// # Refusals
//
// Every refusal is an RFC 6749 §5.2 error (invalid_request, invalid_client,
// invalid_grant, unsupported_grant_type, invalid_scope, RFC 8707's
// invalid_target) with a fixed description that echoes nothing the client
// sent; the log line and a denied audit event (rate limited per caller) get
// a short reason code. Every grant is a token_issued audit event
// (Detail token=access_token, audience, scope, jti, expires_at, bound),
// written before the token is returned: no token leaves without its record.
package authserver
