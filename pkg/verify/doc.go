// Package verify checks both identities of an agent call: the agent, proven
// by the X509-SVID on the mTLS connection, and the user it acts for, carried
// by the delegated JWT-SVID the agent sends as a bearer token. A service that
// receives agent calls builds one Verifier and asks it about every request.
//
// # Verifying a call
//
// The Verifier needs the trust domains' JWT bundles (in production a
// workloadapi.JWTSource), the audiences the service answers to, the trust
// domains it accepts agents from, and a revocation checker:
//
//	jwtSource, _ := workloadapi.NewJWTSource(ctx)
//	watcher, _ := revocation.New(revocation.Config{Client: delegationv1.NewDelegationServiceClient(conn)})
//	go watcher.Run(ctx)
//	v, err := verify.New(verify.Config{
//		Bundles:      jwtSource,
//		Audiences:    []string{"spiffe://example.org/svc/crm"},
//		TrustDomains: []spiffeid.TrustDomain{spiffeid.RequireTrustDomainFromString("example.org")},
//		Revocation:   watcher,
//	})
//
// New refuses a Config without a revocation checker: a verifier that
// forgot it would accept revoked delegations' tokens without a word. A
// service that deliberately accepts them until they expire (up to SPIRE's
// JWT-SVID TTL) says so with InsecureNoRevocation.
//
// Verify takes the peer's SPIFFE ID (PeerID reads it from a connection served
// with ServerTLSConfig) and the token:
//
//	p, err := v.Verify(peerID, token)
//
// It checks, in this order: the token's size (MaxTokenSize, before any
// decoding), the JOSE header (an asymmetric algorithm, a kid; parsed by
// go-jose, as go-spiffe's jwtsvid does, which refuses repeated members), the signature
// against the JWT authority of that kid in an accepted trust domain, then the
// payload: sub a SPIFFE ID of that trust domain, exp/nbf/iat on the injected
// clock, an accepted audience, well-formed delegation claims whose chain ends
// with sub (pkg/claims), and finally that sub is the peer and that neither
// the delegation nor the root of its chain is revoked. The result is a
// Principal: Agent, User, Scopes and the Delegation (ID, Root, Chain,
// ExpiresAt).
//
// A token that verified is cached under its SHA-256 (bounded, dropped at
// expiry), so an agent that reuses its token costs a hash and a map lookup
// instead of a signature check. What can change is still checked on every
// call: the clock, the peer binding, revocation, and that the bundle still
// holds the signing key.
//
// Plain JWT-SVIDs, without delegation claims, are refused with
// ErrNoDelegation unless Config.AllowPlainTokens is set.
//
// # Authorizing
//
// Decide on both identities: what the agent is and what the user delegated.
//
//	err := p.Check(
//		verify.RequireAgentPrefix(spiffeid.RequireFromString("spiffe://example.org/agent")),
//		verify.RequireScopes("campaigns:read"),
//		verify.RequireUser("https://idp.example.com"),
//	)
//
// # Errors
//
// Every error wraps one sentinel of errors.go, so callers branch with
// errors.Is. ClassOf maps them to the answer a transport gives: 401
// (ClassUnauthenticated), 403 (ClassForbidden) or 503 (ClassUnavailable,
// revocation status unknown: the verifier fails closed). Error texts name
// claims and SPIFFE IDs, never the token.
//
// # Transports
//
// This package imports neither net/http nor gRPC nor Envoy. The adapters are
// httpmw (net/http middleware), grpcmw (gRPC interceptors) and extauthz
// (an Envoy ext_authz server, run by cmd/agentid-extauthz); revocation holds
// the WatchDelegations-backed RevocationChecker. They all read the token
// with ParseBearer, so "one Bearer value" means the same everywhere.
//
// Serve the adapters with ServerTLSConfig: it checks the client's X509-SVID
// in VerifyConnection, which crypto/tls runs on resumed sessions too, where
// a VerifyPeerCertificate check (go-spiffe's tlsconfig) is skipped.
package verify
