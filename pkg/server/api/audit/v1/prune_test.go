package audit_test

import (
	"context"
	"errors"
	"io"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/agentid/agentid/pkg/apiconv"
	"github.com/agentid/agentid/pkg/audit"
	"github.com/agentid/agentid/pkg/server/servertest"
	"github.com/agentid/agentid/pkg/store"
	auditv1 "github.com/agentid/agentid/proto/agentid/audit/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// export runs ExportEvents after after and returns the base of the first
// message and the events.
func export(t *testing.T, c clients, after uint64) (audit.Anchor, []audit.Event) {
	t.Helper()
	stream, err := c.Audit.ExportEvents(ctxT(t), &auditv1.ExportEventsRequest{AfterSequence: after})
	if err != nil {
		t.Fatal(err)
	}
	var (
		base  audit.Anchor
		evs   []audit.Event
		first = true
	)
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return base, evs
		}
		if err != nil {
			t.Fatalf("export: %v", err)
		}
		if first {
			if base, err = apiconv.AnchorFromProto(msg.GetBase()); err != nil {
				t.Fatal(err)
			}
			first = false
		} else if msg.GetBase() != nil {
			t.Fatalf("base on a later message: %v", msg.GetBase())
		}
		for _, pe := range msg.GetEvents() {
			ev, err := apiconv.EventFromProto(pe)
			if err != nil {
				t.Fatal(err)
			}
			evs = append(evs, ev)
		}
	}
}

func synced(n int) []audit.Event {
	out := make([]audit.Event, n)
	for i := range out {
		out[i] = audit.Event{Time: time.Now(), Type: audit.TypeAgentSynced, Actor: "agentid-server", Agent: servertest.Orchestrator.String()}
	}
	return out
}

func TestPruneEvents(t *testing.T) {
	e := servertest.Start(t)
	loc := e.Local(t)
	ctx := ctxT(t)
	if err := e.Store.AppendEvents(ctx, synced(5)...); err != nil {
		t.Fatal(err)
	}
	base, all := export(t, loc, 0)
	if !base.IsZero() || len(all) != 5 {
		t.Fatalf("export before pruning: base %s, %d events; want zero, 5", base, len(all))
	}
	head := all[4].Anchor()
	wrong := all[2].Anchor()
	wrong.Hash[0] ^= 1
	deniedBefore := servertest.CountDenied(t, e)

	// Refusals write nothing but a denial, and only for callers who are
	// not admins.
	tests := []struct {
		name   string
		c      clients
		req    *auditv1.PruneEventsRequest
		code   codes.Code
		msg    string
		denied bool
	}{
		{"audit reader over mTLS", e.As(t, servertest.AuditReader), &auditv1.PruneEventsRequest{ThroughSequence: 3, ThroughHash: all[2].Hash[:]},
			codes.PermissionDenied, "only admins may prune the audit log", true},
		{"stranger over mTLS", e.As(t, servertest.Stranger), &auditv1.PruneEventsRequest{ThroughSequence: 3, ThroughHash: all[2].Hash[:]},
			codes.PermissionDenied, "only admins may prune the audit log", true},
		{"no sequence", loc, &auditv1.PruneEventsRequest{ThroughHash: all[2].Hash[:]},
			codes.InvalidArgument, "through_sequence: is required", false},
		{"short hash", loc, &auditv1.PruneEventsRequest{ThroughSequence: 3, ThroughHash: all[2].Hash[:31]},
			codes.InvalidArgument, "through_hash: must be 32 bytes, got 31", false},
		{"beyond the head", loc, &auditv1.PruneEventsRequest{ThroughSequence: 100, ThroughHash: head.Hash[:]},
			codes.InvalidArgument, "store: invalid argument: sequence 100 is beyond the last event 7", false},
		{"wrong hash", loc, &auditv1.PruneEventsRequest{ThroughSequence: 3, ThroughHash: wrong.Hash[:]},
			codes.FailedPrecondition, "store: anchor does not match the audit log: event 3 has hash " + all[2].Hash.String() + ", not " + wrong.Hash.String(), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := servertest.CountDenied(t, e)
			_, err := tt.c.Audit.PruneEvents(ctx, tt.req)
			if st := status.Convert(err); st.Code() != tt.code || st.Message() != tt.msg {
				t.Fatalf("got %s %q\nwant %s %q", st.Code(), st.Message(), tt.code, tt.msg)
			}
			want := before
			if tt.denied {
				want++
			}
			if got := servertest.CountDenied(t, e); got != want {
				t.Fatalf("denied audit events: %d, want %d", got, want)
			}
			if b, err := e.Store.AuditBase(ctx); err != nil || !b.IsZero() {
				t.Fatalf("AuditBase after a refusal = %s, %v", b, err)
			}
		})
	}
	// The denials name the caller and the RPC.
	denials, _, err := e.Store.ListEvents(ctx, store.EventFilter{Type: audit.TypeDenied}, store.Page{})
	if err != nil || len(denials) != deniedBefore+2 {
		t.Fatalf("denials: %d, %v", len(denials), err)
	}
	if d := denials[deniedBefore]; d.Actor != servertest.AuditReader.String() || d.Detail["rpc"] != "PruneEvents" || d.Detail["reason"] != "not_allowed" {
		t.Fatalf("denial = %+v", d)
	}

	// The local socket prunes through event 3.
	through := all[2].Anchor()
	resp, err := loc.Audit.PruneEvents(ctx, &auditv1.PruneEventsRequest{ThroughSequence: 3, ThroughHash: through.Hash[:]})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := apiconv.AnchorFromProto(resp.GetBase()); err != nil || resp.GetPrunedCount() != 3 || got != through {
		t.Fatalf("PruneEvents = %d, base %s (%v); want 3, %s", resp.GetPrunedCount(), got, err, through)
	}
	// Again: already pruned.
	_, err = loc.Audit.PruneEvents(ctx, &auditv1.PruneEventsRequest{ThroughSequence: 3, ThroughHash: through.Hash[:]})
	if st := status.Convert(err); st.Code() != codes.FailedPrecondition ||
		st.Message() != "store: anchor does not match the audit log: the log was already pruned through "+through.String() {
		t.Fatalf("prune again: %s %q", st.Code(), st.Message())
	}

	// The export starts after the base, says so, and verifies from it.
	for _, after := range []uint64{0, 2, 3} {
		b, evs := export(t, loc, after)
		if b != through {
			t.Fatalf("export after %d: base %s, want %s", after, b, through)
		}
		if _, err := audit.VerifyWith(audit.VerifyConfig{From: through}, audit.FromSlice(evs)); err != nil {
			t.Fatalf("export after %d does not verify from the base: %v", after, err)
		}
		var seqs []uint64
		for _, ev := range evs {
			seqs = append(seqs, ev.Sequence)
		}
		if want := []uint64{4, 5, 6, 7, 8}; !slices.Equal(seqs, want) {
			t.Fatalf("export after %d: %v, want %v", after, seqs, want)
		}
		pruned := evs[len(evs)-1]
		wantActor := "local:uid:" + strconv.Itoa(os.Getuid())
		if pruned.Type != audit.TypeAuditPruned || pruned.Actor != wantActor ||
			pruned.Detail[store.DetailThroughSequence] != "3" || pruned.Detail[store.DetailThroughHash] != through.Hash.String() {
			t.Fatalf("prune event = %+v", pruned)
		}
	}
	// Past the base, the base is still reported; the events follow after.
	if b, evs := export(t, loc, 6); b != through || len(evs) != 2 || evs[0].Sequence != 7 {
		t.Fatalf("export after 6: base %s, %d events", b, len(evs))
	}

	// A configured admin prunes over mTLS.
	_, rest := export(t, loc, 0)
	last := rest[len(rest)-1].Anchor()
	resp, err = e.As(t, servertest.Admin).Audit.PruneEvents(ctx, &auditv1.PruneEventsRequest{ThroughSequence: last.Sequence, ThroughHash: last.Hash[:]})
	if err != nil || resp.GetPrunedCount() != last.Sequence-3 {
		t.Fatalf("admin prune = %v, %v", resp, err)
	}
	b, evs := export(t, loc, 0)
	if b != last || len(evs) != 1 || evs[0].Actor != servertest.Admin.String() || evs[0].PrevHash != last.Hash {
		t.Fatalf("after the admin's prune: base %s, events %+v", b, evs)
	}
	if err := e.Store.Check(context.Background()); err != nil {
		t.Fatal(err)
	}
}
