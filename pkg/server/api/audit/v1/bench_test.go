package audit_test

import (
	"strconv"
	"testing"
	"time"

	auditv1 "github.com/agentid/agentid/proto/agentid/audit/v1"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// BenchmarkRecordTokenIssuance measures what one issuance record costs
// agentid-server when the composer sends batches of 100 over the local
// socket: decoding, the delegation lookup, sealing and the grouped write.
//
//	go test -run '^$' -bench RecordTokenIssuance -benchtime 200x ./pkg/server/api/audit/v1
func BenchmarkRecordTokenIssuance(b *testing.B) {
	e := newEnv(b)
	d := create(b, e.As(b, frontend), e.AliceToken(b), orchestrator.String(), time.Hour, "campaigns:read")
	loc := e.Local(b)
	const batch = 100
	req := &auditv1.RecordTokenIssuanceRequest{}
	now := timestamppb.Now()
	for i := range batch {
		req.Issuances = append(req.Issuances, &auditv1.TokenIssuance{DelegationId: d.Id, AgentId: orchestrator.String(),
			Audiences: []string{"spiffe://example.org/svc/crm-" + strconv.Itoa(i)}, IssuedAt: now, ExpiresAt: now})
	}
	b.ResetTimer()
	for range b.N {
		if _, err := loc.Audit.RecordTokenIssuance(ctxT(b), req); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch)/1000, "µs/record")
}
