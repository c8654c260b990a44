// Package grpcmw is a pair of gRPC server interceptors that authenticate
// agent calls with pkg/verify: the agent's X509-SVID on the mTLS connection
// and the delegated JWT-SVID in the "authorization: Bearer <token>"
// metadata, which must belong together.
//
// Serve with credentials.NewTLS(verify.ServerTLSConfig(...)), which checks
// the client's X509-SVID on every connection, resumed ones included
// (go-spiffe's grpccredentials checks only full handshakes, so its peers are
// refused unless Config.AllowGoSpiffeCredentials opts in):
//
//	ic, err := grpcmw.New(grpcmw.Config{
//		Verifier: v,
//		Require:  []verify.Requirement{verify.RequireAgentPrefix(agents)},
//		MethodRequire: map[string][]verify.Requirement{
//			"/crm.v1.Campaigns/List": {verify.RequireScopes("campaigns:read")},
//		},
//	})
//	srv := grpc.NewServer(
//		grpc.Creds(credentials.NewTLS(verify.ServerTLSConfig(svids, bundles, tlsconfig.AuthorizeMemberOf(td)))),
//		grpc.UnaryInterceptor(ic.Unary()), grpc.StreamInterceptor(ic.Stream()),
//	)
//
// Handlers read the caller with PrincipalFrom(ctx). Refusals are
// Unauthenticated (missing, invalid or revoked token, token not the peer's),
// PermissionDenied (a requirement failed) or Unavailable (revocation status
// unknown: the verifier fails closed), with the reason as the message.
//
// A stream is verified once, when it opens: revocation is checked then, not
// on every message. Its context is cancelled at the principal's NotAfter
// (token expiry plus skew, or the delegation's expiry if earlier), so no
// stream outlives its token; clients reopen streams with fresh tokens.
package grpcmw
