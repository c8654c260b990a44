package audit_test

import (
	"context"
	"testing"
	"time"

	"github.com/agentid/agentid/pkg/server/servertest"
	auditv1 "github.com/agentid/agentid/proto/agentid/audit/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// TestAuditStoreFailures: the same for the audit API.
func TestAuditStoreFailures(t *testing.T) {
	e := newEnv(t)
	loc := e.Local(t)
	d := create(t, e.As(t, frontend), e.AliceToken(t), orchestrator.String(), time.Hour, "campaigns:read")
	head, err := e.Store.AuditHead(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	export := func(ctx context.Context) error {
		s, err := loc.Audit.ExportEvents(ctx, &auditv1.ExportEventsRequest{})
		if err != nil {
			return err
		}
		return servertest.RecvAll(s.Recv)
	}
	now := timestamppb.New(e.Clock.Now())
	issuance := &auditv1.RecordTokenIssuanceRequest{Issuances: []*auditv1.TokenIssuance{{
		DelegationId: d.Id, AgentId: orchestrator.String(), Audiences: []string{"crm"}, IssuedAt: now, ExpiresAt: now}}}
	tests := []servertest.StoreFailure{
		{Name: "list", Errs: []error{servertest.ErrStoreDown}, Call: func(ctx context.Context) error {
			_, err := loc.Audit.ListEvents(ctx, &auditv1.ListEventsRequest{})
			return err
		}, Code: codes.Unavailable, Msg: "failed to list events"},
		{Name: "export, base", Errs: []error{servertest.ErrStoreDown}, Call: export, Code: codes.Unavailable, Msg: "failed to read audit base"},
		{Name: "export, head", Errs: []error{nil, servertest.ErrStoreDown}, Call: export, Code: codes.Unavailable, Msg: "failed to read audit head"},
		{Name: "export, events", Errs: []error{nil, nil, servertest.ErrStoreDown}, Call: export, Code: codes.Unavailable, Msg: "failed to export events"},
		{Name: "prune", Errs: []error{servertest.ErrStoreDown}, Call: func(ctx context.Context) error {
			_, err := loc.Audit.PruneEvents(ctx, &auditv1.PruneEventsRequest{ThroughSequence: head.Sequence, ThroughHash: head.Hash[:]})
			return err
		}, Code: codes.Unavailable, Msg: "failed to prune audit events"},
		{Name: "record issuance, reading the delegation", Errs: []error{servertest.ErrStoreDown}, Call: func(ctx context.Context) error {
			_, err := loc.Audit.RecordTokenIssuance(ctx, issuance)
			return err
		}, Code: codes.Unavailable, Msg: "failed to read delegation"},
		{Name: "record issuance, appending", Errs: []error{nil, servertest.ErrStoreDown}, Call: func(ctx context.Context) error {
			_, err := loc.Audit.RecordTokenIssuance(ctx, issuance)
			return err
		}, Code: codes.Unavailable, Msg: "failed to record token issuance"},
	}
	servertest.RunStoreFailures(t, e, tests)
}
