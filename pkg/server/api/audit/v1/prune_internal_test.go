package audit

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/agentid/agentid/pkg/audit"
	"github.com/agentid/agentid/pkg/server/api"
	"github.com/agentid/agentid/pkg/store"
	"github.com/agentid/agentid/pkg/store/boltstore"
	auditv1 "github.com/agentid/agentid/proto/agentid/audit/v1"
)

// staleBase is a store whose AuditBase answers as before a prune: what
// ExportEvents sees when a prune commits between its reads.
type staleBase struct{ store.Store }

func (staleBase) AuditBase(context.Context) (audit.Anchor, error) { return audit.Anchor{}, nil }

// staleHead also answers AuditHead as before the prune: the prune then cut
// off the part of the log the export promised to its end, not a gap in it.
type staleHead struct {
	staleBase
	head audit.Anchor
}

func (s staleHead) AuditHead(context.Context) (audit.Anchor, error) { return s.head, nil }

// exportStream collects what ExportEvents sends.
type exportStream struct {
	grpc.ServerStream
	ctx  context.Context
	sent []*auditv1.ExportEventsResponse
}

func (s *exportStream) Context() context.Context { return s.ctx }
func (s *exportStream) Send(m *auditv1.ExportEventsResponse) error {
	s.sent = append(s.sent, m)
	return nil
}

func TestPruneEventsMetricAndExportGap(t *testing.T) {
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	st, err := boltstore.Open(filepath.Join(t.TempDir(), "agentid.db"), boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	srv := New(Config{Store: st, Clock: func() time.Time { return now }})
	ctx := api.WithCaller(context.Background(), api.Caller{Local: true, UID: 1000})
	evs := make([]audit.Event, 4)
	for i := range evs {
		evs[i] = audit.Event{Time: now, Type: audit.TypeAgentSynced, Actor: "agentid-server"}
	}
	if err := st.AppendEvents(ctx, evs...); err != nil {
		t.Fatal(err)
	}
	head, err := st.AuditHead(ctx)
	if err != nil {
		t.Fatal(err)
	}
	a := srv
	if _, err := a.PruneEvents(ctx, &auditv1.PruneEventsRequest{ThroughSequence: 3, ThroughHash: make([]byte, 32)}); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("wrong hash: %v", err)
	}
	if got := testutil.ToFloat64(srv.metrics.AuditPruned); got != 0 {
		t.Fatalf("pruned metric after a refusal = %v", got)
	}
	resp, err := a.PruneEvents(ctx, &auditv1.PruneEventsRequest{ThroughSequence: head.Sequence, ThroughHash: head.Hash[:]})
	if err != nil || resp.GetPrunedCount() != 4 {
		t.Fatalf("PruneEvents = %v, %v", resp, err)
	}
	if got := testutil.ToFloat64(srv.metrics.AuditPruned); got != 4 {
		t.Fatalf("pruned metric = %v, want 4", got)
	}

	// An export that read the base before the prune would skip events 1..4:
	// it fails rather than send a chain with a gap.
	srv.store = staleBase{st}
	stream := &exportStream{ctx: ctx}
	err = a.ExportEvents(&auditv1.ExportEventsRequest{}, stream)
	if st := status.Convert(err); st.Code() != codes.Aborted || st.Message() != "the audit log was pruned during the export: event 1 is gone; export again" {
		t.Fatalf("export across a prune: %v", err)
	}
	if len(stream.sent) != 0 {
		t.Fatalf("sent %d messages before the gap", len(stream.sent))
	}

	// An export that read both the base and the head before a prune
	// through the head finds nothing of what it promised: it fails too,
	// rather than end with OK and no events.
	srv.store = staleHead{staleBase{st}, head}
	stream = &exportStream{ctx: ctx}
	err = a.ExportEvents(&auditv1.ExportEventsRequest{}, stream)
	if st := status.Convert(err); st.Code() != codes.Aborted || st.Message() != "the audit log was pruned during the export: event 1 is gone; export again" {
		t.Fatalf("export whose tail a prune cut off: %v (sent %d messages)", err, len(stream.sent))
	}
}
