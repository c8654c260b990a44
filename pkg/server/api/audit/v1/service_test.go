package audit_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/agentid/agentid/pkg/audit"
	"github.com/agentid/agentid/pkg/server/servertest"
	auditv1 "github.com/agentid/agentid/proto/agentid/audit/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// TestRecordAndListEvents: issuance records become token_issued events
// naming the delegation's user; ListEvents filters and pages them.
func TestRecordAndListEvents(t *testing.T) {
	e := newEnv(t)
	loc := e.Local(t)
	ctx := ctxT(t)
	d := create(t, e.As(t, frontend), e.AliceToken(t), orchestrator.String(), time.Hour, "campaigns:read")
	now := timestamppb.New(e.Clock.Now())
	rec := func(id string) *auditv1.TokenIssuance {
		return &auditv1.TokenIssuance{DelegationId: id, AgentId: orchestrator.String(), Audiences: []string{"crm", "mail"}, IssuedAt: now, ExpiresAt: now}
	}
	const purged = "dlg_00000000000000000000000000" // a delegation purged since: no user
	resp, err := loc.Audit.RecordTokenIssuance(ctx, &auditv1.RecordTokenIssuanceRequest{Issuances: []*auditv1.TokenIssuance{rec(d.Id), rec(d.Id), rec(purged)}})
	if err != nil || resp.RecordedCount != 3 {
		t.Fatalf("RecordTokenIssuance = %v, %v", resp, err)
	}
	list, err := loc.Audit.ListEvents(ctx, &auditv1.ListEventsRequest{Type: auditv1.EventType(audit.TypeTokenIssued)})
	if err != nil || len(list.Events) != 3 {
		t.Fatalf("ListEvents(token_issued) = %v, %v", list, err)
	}
	if ev := list.Events[0]; ev.Actor != orchestrator.String() || ev.DelegationId != d.Id || ev.Principal.GetSubject() != "alice" ||
		ev.Detail["audience"] != "crm mail" || !strings.HasPrefix(ev.Detail["recorded_by"], "local:uid:") {
		t.Fatalf("issuance event %v", ev)
	}
	if list.Events[2].Principal != nil {
		t.Fatalf("the purged delegation's event names user %v", list.Events[2].Principal)
	}
	byDelegation, err := loc.Audit.ListEvents(ctx, &auditv1.ListEventsRequest{DelegationId: d.Id, PageSize: 2})
	if err != nil || len(byDelegation.Events) != 2 || byDelegation.NextPageToken == "" {
		t.Fatalf("ListEvents(delegation, 2) = %v, %v", byDelegation, err)
	}
	rest, err := loc.Audit.ListEvents(ctx, &auditv1.ListEventsRequest{DelegationId: d.Id, PageSize: 2, PageToken: byDelegation.NextPageToken})
	if err != nil || len(rest.Events) != 1 || rest.NextPageToken != "" {
		t.Fatalf("second page = %v, %v", rest, err)
	}
	after, err := loc.Audit.ListEvents(ctx, &auditv1.ListEventsRequest{AfterSequence: 3})
	if err != nil || len(after.Events) != 1 || after.Events[0].Sequence != 4 {
		t.Fatalf("ListEvents(after 3) = %v, %v", after, err)
	}
}

func TestAuditBadInput(t *testing.T) {
	e := newEnv(t)
	loc := e.Local(t)
	now := timestamppb.New(e.Clock.Now())
	good := func(mut func(*auditv1.TokenIssuance)) *auditv1.RecordTokenIssuanceRequest {
		r := &auditv1.TokenIssuance{DelegationId: "dlg_00000000000000000000000000", AgentId: orchestrator.String(), Audiences: []string{"crm"}, IssuedAt: now, ExpiresAt: now}
		mut(r)
		return &auditv1.RecordTokenIssuanceRequest{Issuances: []*auditv1.TokenIssuance{r}}
	}
	many := make([]*auditv1.TokenIssuance, 1001)
	for i := range many {
		many[i] = good(func(*auditv1.TokenIssuance) {}).Issuances[0]
	}
	tests := []struct {
		name string
		req  any
		code codes.Code
		msg  string
	}{
		{"negative page size", &auditv1.ListEventsRequest{PageSize: -1}, codes.InvalidArgument, "page_size: must not be negative"},
		{"malformed delegation id", &auditv1.ListEventsRequest{DelegationId: "dlg_x"}, codes.InvalidArgument, ""},
		{"unknown type", &auditv1.ListEventsRequest{Type: 99}, codes.InvalidArgument, "type: unknown value 99"},
		{"foreign page token", &auditv1.ListEventsRequest{PageToken: "x"}, codes.InvalidArgument, ""},
		{"batch too large", &auditv1.RecordTokenIssuanceRequest{Issuances: many}, codes.InvalidArgument, "issuances: 1..1000 records per call"},
		{"malformed delegation", good(func(r *auditv1.TokenIssuance) { r.DelegationId = "x" }), codes.InvalidArgument, "issuances[0].delegation_id: "},
		{"malformed agent", good(func(r *auditv1.TokenIssuance) { r.AgentId = "agent/x" }), codes.InvalidArgument, "issuances[0].agent_id: scheme is missing or invalid"},
		{"no audience", good(func(r *auditv1.TokenIssuance) { r.Audiences = nil }), codes.InvalidArgument, "issuances[0].audiences: 1..32 audiences"},
		{"too many audiences", good(func(r *auditv1.TokenIssuance) { r.Audiences = make([]string, 33) }), codes.InvalidArgument, "issuances[0].audiences: 1..32 audiences"},
		{"empty audience", good(func(r *auditv1.TokenIssuance) { r.Audiences = []string{""} }), codes.InvalidArgument, "issuances[0].audiences: each 1..2048 bytes"},
		{"long audience", good(func(r *auditv1.TokenIssuance) { r.Audiences = []string{strings.Repeat("a", 2049)} }), codes.InvalidArgument, "issuances[0].audiences: each 1..2048 bytes"},
		{"no issued_at", good(func(r *auditv1.TokenIssuance) { r.IssuedAt = nil }), codes.InvalidArgument, "issuances[0].issued_at: is required"},
		{"no expires_at", good(func(r *auditv1.TokenIssuance) { r.ExpiresAt = nil }), codes.InvalidArgument, "issuances[0].expires_at: is required"},
	}
	before := auditHead(t, e)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			switch req := tt.req.(type) {
			case *auditv1.ListEventsRequest:
				_, err = loc.Audit.ListEvents(ctxT(t), req)
			case *auditv1.RecordTokenIssuanceRequest:
				_, err = loc.Audit.RecordTokenIssuance(ctxT(t), req)
			}
			if st, _ := status.FromError(err); st.Code() != tt.code || !strings.HasPrefix(st.Message(), tt.msg) {
				t.Fatalf("error = %v, want %s %q", err, tt.code, tt.msg)
			}
		})
	}
	if head, err := e.Store.AuditHead(context.Background()); err != nil || head != before {
		t.Fatalf("refused requests wrote to the audit log: head %v, was %v", head, before)
	}
}

func auditHead(t *testing.T, e *servertest.Env) audit.Anchor {
	t.Helper()
	head, err := e.Store.AuditHead(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return head
}
