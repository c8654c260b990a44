// Package server is agentid-server: the delegation authority that runs beside
// spire-server.
//
// It turns a user's OIDC token into a bounded, revocable, audited delegation
// to an agent (CreateDelegation), lets that agent pass a narrower slice on
// (CreateSubDelegation), revokes whole trees (RevokeDelegation), and streams
// every change to the SPIRE composer plugin and to verifiers
// (WatchDelegations). It also keeps SPIRE's registration entries for the
// declared agents in step (pkg/reconciler) and serves the audit log.
//
// Two gRPC listeners carry the same three services (proto/agentid/...):
//
//   - the local unix socket (LocalServer): the composer plugin, the CLI on the
//     host and admins; the socket's file permissions are the authentication,
//     as for spire-server's own admin socket, and the peer's uid is recorded;
//   - mTLS on TCP (MTLSServer): agents, front ends and verifiers, each
//     identified by the SPIFFE ID of its X509-SVID.
//
// The services are in api/{delegation,agent,audit}/v1, each with Config,
// New and RegisterService, as SPIRE's pkg/server/api; New builds the three
// over one store. Who may call what is written once, in pkg/server/authz, and in each RPC's
// proto comment. Every refusal of a write or a watch past the syntax checks is
// a denied audit event (rate limited per caller);
// a user token is never logged, echoed or stored, and the caller gets one
// fixed message for any bad token. When the store or the identity provider
// cannot be reached the server answers UNAVAILABLE and issues nothing.
//
// Run wires everything from a config.Config:
//
//	cfg, err := config.Load(path)
//	err = server.Run(ctx, cfg, log)
//
// Tests build a Server directly with New, or use servertest for a running one.
package server
