// Package httpmw is net/http middleware that authenticates agent calls with
// pkg/verify: the agent's X509-SVID on the mTLS connection and the delegated
// JWT-SVID in "Authorization: Bearer", which must belong together.
//
// Serve with verify.ServerTLSConfig, so that every connection, resumed ones
// included, carries a verified X509-SVID, and wrap the handlers:
//
//	mw, err := httpmw.New(httpmw.Config{
//		Verifier: v,
//		Require:  []verify.Requirement{verify.RequireAgentPrefix(agents)},
//	})
//	mux := http.NewServeMux()
//	mux.Handle("GET /campaigns", mw.Require(verify.RequireScopes("campaigns:read"))(list))
//	srv := &http.Server{Handler: mw.Handler(mux), TLSConfig: verify.ServerTLSConfig(svids, bundles, tlsconfig.AuthorizeMemberOf(td))}
//	srv.ListenAndServeTLS("", "")
//
// Handlers read the caller with PrincipalFrom(r): the agent, the user, the
// scopes and the delegation chain.
//
// Refusals follow RFC 6750 and carry a JSON ErrorBody:
//
//   - 401 with WWW-Authenticate for a missing, malformed or invalid token,
//     a token that is not the peer's, or a revoked delegation;
//   - 403 when a requirement fails (error="insufficient_scope" in the
//     challenge for a missing scope);
//   - 503 with Retry-After when revocation status is unknown (the verifier
//     fails closed).
package httpmw
