package storetest_test

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"testing"

	"github.com/agentid/agentid/pkg/audit"
	"github.com/agentid/agentid/pkg/delegation"
	"github.com/agentid/agentid/pkg/store"
	"github.com/agentid/agentid/pkg/store/boltstore"
	"github.com/agentid/agentid/pkg/store/storetest"
)

func openBolt(t testing.TB) *boltstore.Store {
	t.Helper()
	s, err := boltstore.Open(filepath.Join(t.TempDir(), "agentid.db"), boltstore.Options{ChangeLogLimit: storetest.ChangeLogLimit})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// With nothing queued the wrapper is the store: it passes the whole suite.
func TestErrorStoreConformance(t *testing.T) {
	storetest.Run(t, func(t testing.TB) store.Store { return storetest.NewErrorStore(openBolt(t)) })
}

func TestErrorStoreInjects(t *testing.T) {
	ctx := context.Background()
	s := storetest.NewErrorStore(openBolt(t))
	errA, errB := errors.New("injected a"), errors.New("injected b")
	ev := audit.Event{Type: audit.TypeDenied, Actor: "local:uid:0"}

	// A failed call writes nothing: it never reaches the store.
	s.SetNextError(errA)
	if err := s.AppendEvents(ctx, ev); !errors.Is(err, errA) {
		t.Fatalf("AppendEvents = %v, want %v", err, errA)
	}
	if head, err := s.AuditHead(ctx); err != nil || head.Sequence != 0 {
		t.Fatalf("AuditHead after a failed append = %v, %v; want sequence 0", head, err)
	}

	// Queued in order; a nil lets its call through.
	s.AppendNextError(nil, errB)
	if s.Pending() != 2 {
		t.Fatalf("Pending = %d, want 2", s.Pending())
	}
	if err := s.AppendEvents(ctx, ev); err != nil {
		t.Fatalf("first call = %v, want it through", err)
	}
	if _, err := s.Revision(ctx); !errors.Is(err, errB) {
		t.Fatalf("second call = %v, want %v", err, errB)
	}
	if s.Pending() != 0 {
		t.Fatalf("Pending = %d, want 0", s.Pending())
	}
	if head, err := s.AuditHead(ctx); err != nil || head.Sequence != 1 {
		t.Fatalf("AuditHead = %v, %v; want sequence 1", head, err)
	}
	if got := s.Failed(); !slices.Equal(got, []string{"AppendEvents", "Revision"}) {
		t.Fatalf("Failed = %v", got)
	}
	if got := s.Failed(); got != nil {
		t.Fatalf("Failed after Failed = %v, want nil", got)
	}

	// SetNextError replaces the queue; SetNextError(nil) clears it.
	s.AppendNextError(errA, errA)
	s.SetNextError(errB)
	if s.Pending() != 1 {
		t.Fatalf("Pending after SetNextError = %d, want 1", s.Pending())
	}
	s.SetNextError(nil)
	if s.Pending() != 0 {
		t.Fatalf("Pending after SetNextError(nil) = %d, want 0", s.Pending())
	}

	// Every method that can fail takes the queued error.
	calls := map[string]func() error{
		"CreateDelegation": func() error { _, err := s.CreateDelegation(ctx, nil, ev); return err },
		"GetDelegation":    func() error { _, err := s.GetDelegation(ctx, delegation.NewID()); return err },
		"ListDelegations":  func() error { _, _, err := s.ListDelegations(ctx, store.Filter{}, store.Page{}); return err },
		"Children":         func() error { _, err := s.Children(ctx, delegation.NewID()); return err },
		"RevokeDelegation": func() error { _, _, err := s.RevokeDelegation(ctx, store.Revocation{}); return err },
		"PurgeExpired":     func() error { _, err := s.PurgeExpired(ctx, storetest.T0, 1); return err },
		"Snapshot":         func() error { _, _, err := s.Snapshot(ctx); return err },
		"Revision":         func() error { _, err := s.Revision(ctx); return err },
		"Changes":          func() error { _, err := s.Changes(ctx, 0, 1); return err },
		"AppendEvents":     func() error { return s.AppendEvents(ctx, ev) },
		"ListEvents":       func() error { _, _, err := s.ListEvents(ctx, store.EventFilter{}, store.Page{}); return err },
		"AuditHead":        func() error { _, err := s.AuditHead(ctx); return err },
		"PruneEvents":      func() error { _, err := s.PruneEvents(ctx, audit.Anchor{Sequence: 1}, ev); return err },
		"AuditBase":        func() error { _, err := s.AuditBase(ctx); return err },
		"PutAgent":         func() error { return s.PutAgent(ctx, store.Agent{Name: "a"}) },
		"GetAgent":         func() error { _, err := s.GetAgent(ctx, "a"); return err },
		"ListAgents":       func() error { _, err := s.ListAgents(ctx); return err },
		"DeleteAgent":      func() error { return s.DeleteAgent(ctx, "a") },
	}
	for name, call := range calls {
		s.SetNextError(errA)
		if err := call(); !errors.Is(err, errA) {
			t.Errorf("%s = %v, want %v", name, err, errA)
		}
		if got := s.Failed(); !slices.Equal(got, []string{name}) {
			t.Errorf("%s: Failed = %v", name, got)
		}
	}
	if _, err := s.GetAgent(ctx, "a"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetAgent after a failed PutAgent = %v, want ErrNotFound", err)
	}
}
