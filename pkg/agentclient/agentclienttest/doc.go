// Package agentclienttest runs a fake SPIFFE Workload API for unit tests of
// agents, the sidecar and services: a real gRPC server on a unix socket that
// speaks go-spiffe's workload proto, serves X509-SVIDs from a test CA and
// mints ES256 JWT-SVIDs, and imitates agentid's composer for delegated
// tokens. It is for unit tests only; the end-to-end suite runs real SPIRE.
//
// What it imitates, and how closely:
//
//   - the security header: a call without "workload.spiffe.io: true" gets
//     InvalidArgument "security header missing from request", as from a
//     SPIRE agent;
//   - FetchJWTSVID: an empty audience is InvalidArgument; a spiffe_id other
//     than the workload's is PermissionDenied "no identity issued"; one
//     marker audience (claims.MarkerPrefix) asks for a delegated token, and
//     the composer's rules apply: the delegation must be known, belong to
//     the workload's SPIFFE ID, not be revoked nor expired; the marker is
//     stripped, the claims of pkg/claims added, exp capped at the
//     delegation's expiry. A refusal reaches the workload exactly as
//     SPIRE v1.13.3 relays it: Unavailable "could not fetch JWT-SVID: failed
//     to fetch JWT SVID: rpc error: code = Internal desc = failed to sign
//     JWT-SVID: credentialcomposer(agentid): composer: …";
//   - Authority.SetServerDown: the SPIRE agent cannot reach its server, so
//     every JWT-SVID fetch fails with Unavailable;
//   - FetchX509SVID, FetchX509Bundles and FetchJWTBundles: one message, then
//     the stream stays open until the client leaves.
//
// It does not cache tokens the way the SPIRE agent does: every fetch mints.
package agentclienttest
