package reconciler_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/agentid/agentid/pkg/reconciler"
	"github.com/agentid/agentid/pkg/spireapi"
	"github.com/agentid/agentid/pkg/spireapi/spireapitest"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/spire-api-sdk/proto/spire/api/types"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

func TestCreateThenNoOp(t *testing.T) {
	e := newEnv(t)
	a := agent("gdpr", "aiagent:name:gdpr", "aiagent:signer:k1")
	b := agent("market")
	b.X509SVIDTTL, b.JWTSVIDTTL = 0, 0 // SPIRE's defaults
	e.setAgents(t, a, b)
	e.reconcile(t)

	if got, want := e.srv.Calls(), (spireapitest.Calls{ListEntries: 1, BatchCreateEntry: 1, Created: 2}); got != want {
		t.Errorf("first pass calls\n got %+v\nwant %+v", got, want)
	}
	stored, ok := e.srv.Entry(e.entryID(t, "gdpr"))
	if !ok {
		t.Fatalf("entry %q not created", e.entryID(t, "gdpr"))
	}
	want := &types.Entry{
		Id:          e.entryID(t, "gdpr"),
		SpiffeId:    &types.SPIFFEID{TrustDomain: "example.org", Path: "/agent/gdpr"},
		ParentId:    &types.SPIFFEID{TrustDomain: "example.org", Path: parentID.Path()},
		Selectors:   []*types.Selector{{Type: "aiagent", Value: "name:gdpr"}, {Type: "aiagent", Value: "signer:k1"}},
		X509SvidTtl: 3600,
		JwtSvidTtl:  300,
		CreatedAt:   stored.CreatedAt,
	}
	if !proto.Equal(stored, want) {
		t.Errorf("stored entry\n got %v\nwant %v", stored, want)
	}
	for _, name := range []string{"gdpr", "market"} {
		st, _ := e.rec.State(name)
		if st.State != reconciler.StateSynced || !st.LastSynced.Equal(start) || !st.LastAttempt.Equal(start) || st.LastError != "" {
			t.Errorf("state of %s = %+v, want synced at %s", name, st, start)
		}
	}

	e.srv.ResetCalls()
	e.clock.Add(10 * time.Second)
	e.reconcile(t)
	// Two list calls: SPIRE ends a listing with an empty page.
	if got, want := e.srv.Calls(), (spireapitest.Calls{ListEntries: 2}); got != want {
		t.Errorf("second pass calls\n got %+v\nwant %+v (no writes)", got, want)
	}
	if st, _ := e.rec.State("gdpr"); !st.LastSynced.Equal(start.Add(10 * time.Second)) {
		t.Errorf("LastSynced after the no-op pass = %s, want %s", st.LastSynced, start.Add(10*time.Second))
	}
	if got, want := e.onSyncCalls(), []string{"gdpr=pending", "market=pending", "gdpr=synced", "market=synced", "gdpr=synced", "market=synced"}; !slices.Equal(got, want) {
		t.Errorf("OnSync calls = %q, want %q", got, want)
	}
}

func TestUpdate(t *testing.T) {
	for _, tt := range []struct {
		name   string
		change func(a *reconciler.Agent)
		tamper func(e *spireapi.Entry) // a human edits the owned entry instead
		check  func(t *testing.T, got *types.Entry)
	}{
		{
			name: "selector added",
			change: func(a *reconciler.Agent) {
				a.Selectors = append(a.Selectors, spireapi.Selector{Type: "aiagent", Value: "model:openai/gpt-5"})
			},
			check: func(t *testing.T, got *types.Entry) {
				if len(got.Selectors) != 2 {
					t.Errorf("selectors = %v, want 2", got.Selectors)
				}
			},
		},
		{
			name:   "X509-SVID TTL",
			change: func(a *reconciler.Agent) { a.X509SVIDTTL = 2 * time.Hour },
			check: func(t *testing.T, got *types.Entry) {
				if got.X509SvidTtl != 7200 {
					t.Errorf("X509SvidTtl = %d, want 7200", got.X509SvidTtl)
				}
			},
		},
		{
			name:   "JWT-SVID TTL",
			change: func(a *reconciler.Agent) { a.JWTSVIDTTL = time.Minute },
			check: func(t *testing.T, got *types.Entry) {
				if got.JwtSvidTtl != 60 {
					t.Errorf("JwtSvidTtl = %d, want 60", got.JwtSvidTtl)
				}
			},
		},
		{
			name:   "SPIFFE ID",
			change: func(a *reconciler.Agent) { a.SPIFFEID = spiffeid.RequireFromPath(td, "/agent/gdpr-v2") },
			check: func(t *testing.T, got *types.Entry) {
				if got.SpiffeId.Path != "/agent/gdpr-v2" {
					t.Errorf("SPIFFE ID path = %q, want /agent/gdpr-v2", got.SpiffeId.Path)
				}
			},
		},
		{
			name:   "owned entry made admin by hand is put back",
			tamper: func(e *spireapi.Entry) { e.Admin = true },
			check: func(t *testing.T, got *types.Entry) {
				if got.Admin {
					t.Errorf("entry is still admin")
				}
			},
		},
		{
			name: "owned entry given DNS names and federation by hand is put back",
			tamper: func(e *spireapi.Entry) {
				e.DNSNames = []string{"x.example.org"}
				e.FederatesWith = []spiffeid.TrustDomain{td}
			},
			check: func(t *testing.T, got *types.Entry) {
				if len(got.DnsNames) != 0 || len(got.FederatesWith) != 0 {
					t.Errorf("DNS names %v, federates with %v, want none", got.DnsNames, got.FederatesWith)
				}
			},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			a := agent("gdpr")
			e.setAgents(t, a, agent("other"))
			e.reconcile(t)
			id := e.entryID(t, "gdpr")

			if tt.change != nil {
				tt.change(&a)
				e.setAgents(t, a, agent("other"))
				if st, _ := e.rec.State("gdpr"); st.State != reconciler.StatePending {
					t.Errorf("state after SetAgents = %s, want pending", st.State)
				}
			}
			if tt.tamper != nil {
				entries, err := e.client.ListEntries(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				i := slices.IndexFunc(entries, func(x spireapi.Entry) bool { return x.ID == id })
				tt.tamper(&entries[i])
				if sts, err := e.client.UpdateEntries(context.Background(), entries[i:i+1]); err != nil || sts[0].Code != codes.OK {
					t.Fatalf("tampering: %v %v", sts, err)
				}
			}
			e.srv.ResetCalls()
			e.reconcile(t)

			if got, want := e.srv.Calls(), (spireapitest.Calls{ListEntries: 2, BatchUpdateEntry: 1, Updated: 1}); got != want {
				t.Errorf("calls\n got %+v\nwant %+v", got, want)
			}
			got, _ := e.srv.Entry(id)
			tt.check(t, got)
			if st, _ := e.rec.State("gdpr"); st.State != reconciler.StateSynced {
				t.Errorf("state = %+v, want synced", st)
			}
		})
	}
}

func TestDeleteOnRemoval(t *testing.T) {
	e := newEnv(t)
	e.setAgents(t, agent("a"), agent("b"))
	e.reconcile(t)
	idB := e.entryID(t, "b")

	e.setAgents(t, agent("a"))
	e.srv.ResetCalls()
	e.reconcile(t)

	if got, want := e.srv.Calls(), (spireapitest.Calls{ListEntries: 2, BatchDeleteEntry: 1, Deleted: 1}); got != want {
		t.Errorf("calls\n got %+v\nwant %+v", got, want)
	}
	if _, ok := e.srv.Entry(idB); ok {
		t.Errorf("entry %q of the removed agent still exists", idB)
	}
	if got := e.rec.States(); len(got) != 1 || got["a"].State != reconciler.StateSynced {
		t.Errorf("states = %+v, want only a, synced", got)
	}
	if n, err := testutil.GatherAndCount(e.registry, "agentid_agent_sync_state"); err != nil || n != 3 {
		t.Errorf("agentid_agent_sync_state has %d series (%v), want 3 (agent a only)", n, err)
	}

	e.setAgents(t) // an empty declaration is a declaration
	e.reconcile(t)
	if got := e.srv.Entries(); len(got) != 0 {
		t.Errorf("%d entries left after declaring no agents, want 0", len(got))
	}
}

func TestRenameReplacesEntry(t *testing.T) {
	e := newEnv(t)
	a := agent("gdpr")
	e.setAgents(t, a)
	e.reconcile(t)
	oldID := e.entryID(t, "gdpr")

	a.Name = "gdpr-compliance" // same SPIFFE ID, parent and selectors: SPIRE's "similar" entry
	e.setAgents(t, a)
	e.reconcile(t)
	newID := e.entryID(t, "gdpr-compliance")
	got := e.srv.Entries()
	if len(got) != 1 || got[0].Id != newID {
		t.Errorf("entries after rename = %v, want only %q (old %q)", got, newID, oldID)
	}
}

func TestForeignEntriesUntouched(t *testing.T) {
	e := newEnv(t)
	sel := func(v string) *types.Selector { return &types.Selector{Type: "aiagent", Value: v} }
	seeded := []*types.Entry{
		e.srv.AddEntry(foreignEntry("", "/human/uuid-id", sel("name:h"))),
		e.srv.AddEntry(foreignEntry("spire-controller-manager.abc", "/k8s/pod", &types.Selector{Type: "k8s", Value: "ns:default"})),
		e.srv.AddEntry(foreignEntry("agentid_almost", "/agent/a", sel("name:other"))),    // no dash: not the prefix
		e.srv.AddEntry(foreignEntry("Agentid-case", "/agent/a", sel("name:other2"))),     // prefix is case sensitive
		e.srv.AddEntry(foreignEntry("x-agentid-inside", "/agent/a", sel("name:other3"))), // prefix not at the start
	}

	e.setAgents(t, agent("a"))
	e.reconcile(t)
	e.setAgents(t) // and with nothing declared
	e.reconcile(t)

	got := e.srv.Entries()
	if len(got) != len(seeded) {
		t.Fatalf("%d entries, want the %d foreign ones", len(got), len(seeded))
	}
	for i := range seeded {
		if !proto.Equal(got[i], seeded[i]) {
			t.Errorf("foreign entry changed\n got %v\nwant %v", got[i], seeded[i])
		}
	}
}

func TestForeignSimilarEntryConflict(t *testing.T) {
	e := newEnv(t)
	human := e.srv.AddEntry(foreignEntry("made-by-hand", "/agent/gdpr", &types.Selector{Type: "aiagent", Value: "name:gdpr"}))
	e.setAgents(t, agent("gdpr"), agent("ok"))

	err := e.rec.Reconcile(context.Background())
	if !errors.Is(err, reconciler.ErrIncomplete) {
		t.Fatalf("Reconcile error = %v, want ErrIncomplete", err)
	}
	st, _ := e.rec.State("gdpr")
	if want := `reconciler: a similar entry not owned by the reconciler exists: entry "made-by-hand"`; st.State != reconciler.StateError || st.LastError != want {
		t.Errorf("state = %+v, want error %q", st, want)
	}
	if st, _ := e.rec.State("ok"); st.State != reconciler.StateSynced {
		t.Errorf("state of ok = %+v, want synced", st)
	}
	if got, _ := e.srv.Entry("made-by-hand"); !proto.Equal(got, human) {
		t.Errorf("foreign entry changed: %v", got)
	}
}

func TestPerAgentFailure(t *testing.T) {
	e := newEnv(t)
	e.srv.FailWrites(spiffeid.RequireFromPath(td, "/agent/b"), codes.InvalidArgument, "failed to convert entry: injected")
	e.setAgents(t, agent("a"), agent("b"), agent("c"))

	err := e.rec.Reconcile(context.Background())
	if want := "reconciler: pass incomplete: 1 of 3 agents not synced, 0 undeclared owned entries not deleted"; fmt.Sprint(err) != want {
		t.Errorf("Reconcile error = %v, want %q", err, want)
	}
	if !errors.Is(err, reconciler.ErrIncomplete) {
		t.Errorf("error %v does not wrap ErrIncomplete", err)
	}
	states := e.rec.States()
	for _, name := range []string{"a", "c"} {
		if states[name].State != reconciler.StateSynced {
			t.Errorf("state of %s = %+v, want synced", name, states[name])
		}
	}
	if want := "reconciler: failed to create entry: rpc error: code = InvalidArgument desc = failed to convert entry: injected"; states["b"].State != reconciler.StateError || states["b"].LastError != want {
		t.Errorf("state of b = %+v, want error %q", states["b"], want)
	}
	if got := e.srv.Calls().Created; got != 2 {
		t.Errorf("created %d entries, want 2", got)
	}

	e.srv.ClearFailures()
	e.clock.Add(time.Second)
	e.reconcile(t)
	if st, _ := e.rec.State("b"); st.State != reconciler.StateSynced || st.LastError != "" || !st.LastSynced.Equal(start.Add(time.Second)) {
		t.Errorf("state of b after the failure cleared = %+v, want synced", st)
	}
}

func TestServerDownThenRecovery(t *testing.T) {
	e := newEnv(t)
	e.setAgents(t, agent("a"), agent("b"))
	e.reconcile(t)

	e.srv.Stop()
	e.clock.Add(10 * time.Second)
	err := e.rec.Reconcile(context.Background())
	if err == nil || !strings.HasPrefix(err.Error(), "reconciler: failed to list entries: ") || status.Code(errors.Unwrap(errors.Unwrap(err))) != codes.Unavailable {
		t.Fatalf("Reconcile with SPIRE down = %v, want a list failure with code Unavailable", err)
	}
	for name, st := range e.rec.States() {
		if st.State != reconciler.StateError || st.LastError != err.Error() || !st.LastSynced.Equal(start) || !st.LastAttempt.Equal(start.Add(10*time.Second)) {
			t.Errorf("state of %s = %+v, want error %q, last synced at %s", name, st, err, start)
		}
	}

	e.srv.Start()
	e.waitReady(t)
	e.clock.Add(10 * time.Second)
	e.reconcile(t)
	for name, st := range e.rec.States() {
		if st.State != reconciler.StateSynced || st.LastError != "" {
			t.Errorf("state of %s after recovery = %+v, want synced", name, st)
		}
	}
	if got, want := runs(t, e, "error"), 1.0; got != want {
		t.Errorf("runs{result=error} = %v, want %v", got, want)
	}
}

func TestMetrics(t *testing.T) {
	e := newEnv(t)
	e.srv.FailWrites(spiffeid.RequireFromPath(td, "/agent/b"), codes.Internal, "injected")
	e.setAgents(t, agent("a"), agent("b"))
	_ = e.rec.Reconcile(context.Background())

	want := `
# HELP agentid_agent_sync_state 1 for the current sync state of each declared agent (pending, synced, error), 0 for the others.
# TYPE agentid_agent_sync_state gauge
agentid_agent_sync_state{agent="a",state="error"} 0
agentid_agent_sync_state{agent="a",state="pending"} 0
agentid_agent_sync_state{agent="a",state="synced"} 1
agentid_agent_sync_state{agent="b",state="error"} 1
agentid_agent_sync_state{agent="b",state="pending"} 0
agentid_agent_sync_state{agent="b",state="synced"} 0
# HELP agentid_reconcile_entry_writes_total SPIRE entry writes by operation (create, update, delete) and gRPC status code.
# TYPE agentid_reconcile_entry_writes_total counter
agentid_reconcile_entry_writes_total{code="Internal",op="create"} 1
agentid_reconcile_entry_writes_total{code="OK",op="create"} 1
# HELP agentid_reconcile_runs_total Reconciliation passes of declared agents into SPIRE entries, by result (success, incomplete, error).
# TYPE agentid_reconcile_runs_total counter
agentid_reconcile_runs_total{result="error"} 0
agentid_reconcile_runs_total{result="incomplete"} 1
agentid_reconcile_runs_total{result="success"} 0
# HELP agentid_reconcile_owned_entries SPIRE entries carrying the reconciler's id prefix, as last listed.
# TYPE agentid_reconcile_owned_entries gauge
agentid_reconcile_owned_entries 0
# HELP agentid_reconcile_last_success_timestamp_seconds Unix time of the last pass that synced every agent.
# TYPE agentid_reconcile_last_success_timestamp_seconds gauge
agentid_reconcile_last_success_timestamp_seconds 0
`
	if err := testutil.GatherAndCompare(e.registry, strings.NewReader(want)); err != nil {
		t.Error(err)
	}

	e.srv.ClearFailures()
	e.reconcile(t)
	if got := runs(t, e, "success"); got != 1 {
		t.Errorf("runs{result=success} = %v, want 1", got)
	}
}

// runs returns agentid_reconcile_runs_total{result}.
func runs(t *testing.T, e *env, result string) float64 {
	t.Helper()
	families, err := e.registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "agentid_reconcile_runs_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "result" && l.GetValue() == result {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no agentid_reconcile_runs_total{result=%q}", result)
	return 0
}

func TestReconcileBeforeSetAgents(t *testing.T) {
	e := newEnv(t)
	e.srv.AddEntry(foreignEntry("agentid-left-over", "/agent/x", &types.Selector{Type: "aiagent", Value: "name:x"}))
	e.srv.ResetCalls()
	if err := e.rec.Reconcile(context.Background()); !errors.Is(err, reconciler.ErrAgentsNotSet) {
		t.Fatalf("Reconcile before SetAgents = %v, want ErrAgentsNotSet", err)
	}
	if got := e.srv.Calls(); got != (spireapitest.Calls{}) {
		t.Errorf("calls before SetAgents = %+v, want none", got)
	}
}

// raceClient is the real client, with another replica creating an entry
// between the pass's list and its create.
type raceClient struct {
	spireapi.EntryClient
	beforeCreate func()
}

func (r raceClient) CreateEntries(ctx context.Context, entries []spireapi.Entry) ([]spireapi.Status, error) {
	r.beforeCreate()
	return r.EntryClient.CreateEntries(ctx, entries)
}

func TestCreateAnsweredAlreadyExistsIsAnUpdateCheck(t *testing.T) {
	var e *env
	e = newEnv(t, func(c *reconciler.Config) {
		c.Client = raceClient{EntryClient: c.Client, beforeCreate: func() {
			id := e.entryID(t, "a")
			if _, ok := e.srv.Entry(id); ok {
				return
			}
			// The other replica runs an older configuration: another TTL.
			stale := foreignEntry(id, "/agent/a", &types.Selector{Type: "aiagent", Value: "name:a"})
			stale.X509SvidTtl = 60
			e.srv.AddEntry(stale)
		}}
	})
	e.setAgents(t, agent("a"))
	e.srv.ResetCalls()
	e.reconcile(t)

	// Created: 1 is the other replica's entry.
	if got, want := e.srv.Calls(), (spireapitest.Calls{ListEntries: 1, BatchCreateEntry: 1, BatchUpdateEntry: 1, Created: 1, Updated: 1}); got != want {
		t.Errorf("calls\n got %+v\nwant %+v", got, want)
	}
	got, _ := e.srv.Entry(e.entryID(t, "a"))
	if got.X509SvidTtl != 3600 {
		t.Errorf("X509SvidTtl = %d, want 3600", got.X509SvidTtl)
	}
	if st, _ := e.rec.State("a"); st.State != reconciler.StateSynced {
		t.Errorf("state = %+v, want synced", st)
	}
}

func TestManyAgentsBatched(t *testing.T) {
	e := newEnv(t)
	var agents []reconciler.Agent
	for i := range 250 {
		agents = append(agents, agent(fmt.Sprintf("agent-%03d", i)))
	}
	e.setAgents(t, agents...)
	e.reconcile(t)
	if got, want := e.srv.Calls(), (spireapitest.Calls{ListEntries: 1, BatchCreateEntry: 5, Created: 250}); got != want {
		t.Errorf("first pass calls\n got %+v\nwant %+v", got, want)
	}
	e.srv.ResetCalls()
	e.reconcile(t)
	if got, want := e.srv.Calls(), (spireapitest.Calls{ListEntries: 3}); got != want {
		t.Errorf("second pass calls\n got %+v\nwant %+v", got, want)
	}
}

func TestSetAgentsIsAtomic(t *testing.T) {
	e := newEnv(t)
	e.setAgents(t, agent("a"))
	before := e.rec.States()
	bad := agent("b")
	bad.Selectors = nil
	if err := e.rec.SetAgents([]reconciler.Agent{agent("c"), bad}); !errors.Is(err, reconciler.ErrInvalidAgent) {
		t.Fatalf("SetAgents = %v, want ErrInvalidAgent", err)
	}
	if got := e.rec.States(); !reflect.DeepEqual(got, before) {
		t.Errorf("states after a refused SetAgents = %+v, want %+v", got, before)
	}
}
