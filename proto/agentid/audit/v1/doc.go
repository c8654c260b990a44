// Package auditv1 is the Go code generated from agentid/audit/v1/audit.proto:
// the AuditService that reads agentid's hash-chained audit log and takes the
// token-issuance records of the SPIRE composer plugin. The .proto file is the
// reference for callers and limits. Regenerate with `make generate`; never
// edit *.pb.go.
//
// An Event carries every field its hash covers, so an export can be checked
// without trusting the server: convert each Event to pkg/audit's Event (type
// by number, principal as issuer + "#" + subject, hashes as 32-byte arrays)
// and verify the chain there. `agentid audit export` streams the log with
// ExportEvents:
//
//	stream, err := auditv1.NewAuditServiceClient(conn).ExportEvents(ctx,
//		&auditv1.ExportEventsRequest{AfterSequence: lastSeen})
//	for {
//		resp, err := stream.Recv()
//		if err == io.EOF {
//			break // the export reached the end of the log as of the call
//		}
//		// handle err; then append resp.GetEvents() in order
//	}
//
// After a pruning (PruneEvents, `agentid audit prune`), the log starts after
// a base anchor: the first ExportEventsResponse carries it, and the export
// verifies from it (pkg/audit's VerifyConfig.From) rather than from
// sequence 1.
//
// The composer reports issuances in batches of up to 1000 with
// RecordTokenIssuance, over the local socket only.
package auditv1
