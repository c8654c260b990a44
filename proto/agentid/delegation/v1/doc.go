// Package delegationv1 is the Go code generated from
// agentid/delegation/v1/delegation.proto: the DelegationService through which
// users delegate to agents, agents sub-delegate, callers revoke, and the SPIRE
// composer plugin and verifiers follow every change. The .proto file is the
// reference for who may call each RPC and for every limit; this page shows
// how the pieces fit. Regenerate with `make generate`; never edit *.pb.go.
//
// agentid-server implements the service by embedding
// UnimplementedDelegationServiceServer (so that an RPC added later answers
// Unimplemented instead of breaking the build) and registers it on both of
// its listeners:
//
//	delegationv1.RegisterDelegationServiceServer(grpcServer, svc)
//
// A client (the CLI, the sidecar, pkg/agentclient) creates and revokes
// delegations with the unary RPCs:
//
//	client := delegationv1.NewDelegationServiceClient(conn)
//	resp, err := client.CreateDelegation(ctx, &delegationv1.CreateDelegationRequest{
//		UserToken: idToken,
//		AgentId:   "spiffe://example.org/agent/gdpr-compliance",
//		Scopes:    []string{"campaigns:read", "compliance:check"},
//		Ttl:       durationpb.New(time.Hour),
//		Intent:    "check the spring campaign for GDPR issues",
//	})
//	// resp.GetDelegation().GetId() is the id to put in the marker audience.
//
// # Keeping a replica with WatchDelegations
//
// The composer plugin (and, with RevokedOnly, a verifier) keeps an in-memory
// replica. The stream starts with a snapshot split over
// WatchDelegationsResponse_Snapshot messages, closed by exactly one
// WatchDelegationsResponse_SnapshotEnd; only then is the replica complete.
// After that, each WatchDelegationsResponse_Change carries one committed
// change with a strictly larger revision, and WatchDelegationsResponse_Progress
// arrives whenever the stream has been quiet for the server's heartbeat
// interval. A client remembers the last revision it applied and, after a
// broken stream, resumes with SinceRevision set to it. If the server answers
// codes.OutOfRange, the revision is no longer (or not yet) in its log: drop
// the replica and watch again from SinceRevision 0. Example_watch shows the
// loop.
package delegationv1
