package agent_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/agentid/agentid/pkg/server/servertest"
	agentv1 "github.com/agentid/agentid/proto/agentid/agent/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func names(agents []*agentv1.Agent) string {
	var out []string
	for _, a := range agents {
		out = append(out, a.Name)
	}
	return strings.Join(out, " ")
}

func TestListAndGetAgents(t *testing.T) {
	e := newEnv(t)
	loc := e.Local(t)
	ctx := ctxT(t)
	// The reconciler's record of one agent, as it writes it after a pass.
	rec, err := e.Store.GetAgent(ctx, "writer")
	if err != nil {
		t.Fatal(err)
	}
	synced := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	rec.SyncState, rec.EntryID, rec.LastSynced = "synced", "agentid-writer.0123", synced
	if err := e.Store.PutAgent(ctx, rec); err != nil {
		t.Fatal(err)
	}

	resp, err := loc.Agents.ListAgents(ctx, &agentv1.ListAgentsRequest{})
	if err != nil || names(resp.Agents) != "market-analysis orchestrator writer" || resp.NextPageToken != "" {
		t.Fatalf("ListAgents = %v, %v", resp, err)
	}
	o := resp.Agents[1]
	if o.SpiffeId != orchestrator.String() || strings.Join(o.ScopeCeiling, " ") != "campaigns:read compliance:check crm:write" ||
		strings.Join(o.AllowedSubAgents, " ") != analyst.String() || o.SyncState != agentv1.SyncState_SYNC_STATE_PENDING || o.LastSyncedAt != nil {
		t.Fatalf("orchestrator: %v", o)
	}
	w := resp.Agents[2]
	if w.SyncState != agentv1.SyncState_SYNC_STATE_SYNCED || w.EntryId != "agentid-writer.0123" || !w.LastSyncedAt.AsTime().Equal(synced) {
		t.Fatalf("writer: %v", w)
	}

	// Paging by index, and the sync state filter.
	var pages []string
	token := ""
	for {
		resp, err := loc.Agents.ListAgents(ctx, &agentv1.ListAgentsRequest{PageSize: 2, PageToken: token})
		if err != nil {
			t.Fatal(err)
		}
		pages = append(pages, names(resp.Agents))
		if token = resp.NextPageToken; token == "" {
			break
		}
	}
	if got := strings.Join(pages, " | "); got != "market-analysis orchestrator | writer" {
		t.Fatalf("pages %q", got)
	}
	if resp, err := loc.Agents.ListAgents(ctx, &agentv1.ListAgentsRequest{SyncState: agentv1.SyncState_SYNC_STATE_SYNCED}); err != nil || names(resp.Agents) != "writer" {
		t.Fatalf("synced agents: %v, %v", resp, err)
	}

	for key, want := range map[string]*agentv1.GetAgentRequest{
		"writer":       {Key: &agentv1.GetAgentRequest_Name{Name: "writer"}},
		"orchestrator": {Key: &agentv1.GetAgentRequest_SpiffeId{SpiffeId: orchestrator.String()}},
	} {
		got, err := e.As(t, servertest.AuditReader).Agents.GetAgent(ctx, want)
		if err != nil || got.Agent.Name != key {
			t.Fatalf("GetAgent(%s) = %v, %v", key, got, err)
		}
	}
}

func TestAgentsRefusals(t *testing.T) {
	e := newEnv(t)
	loc, strange := e.Local(t), e.As(t, stranger)
	tests := []struct {
		name string
		call func(ctx context.Context) error
		code codes.Code
		msg  string
	}{
		{"list as a stranger", func(ctx context.Context) error {
			_, err := strange.Agents.ListAgents(ctx, &agentv1.ListAgentsRequest{})
			return err
		}, codes.PermissionDenied, "caller may not read agents"},
		{"get as a stranger", func(ctx context.Context) error {
			_, err := strange.Agents.GetAgent(ctx, &agentv1.GetAgentRequest{Key: &agentv1.GetAgentRequest_Name{Name: "writer"}})
			return err
		}, codes.PermissionDenied, "caller may not read agents"},
		{"negative page size", func(ctx context.Context) error {
			_, err := loc.Agents.ListAgents(ctx, &agentv1.ListAgentsRequest{PageSize: -1})
			return err
		}, codes.InvalidArgument, "page_size: must not be negative"},
		{"foreign page token", func(ctx context.Context) error {
			_, err := loc.Agents.ListAgents(ctx, &agentv1.ListAgentsRequest{PageToken: "4"})
			return err
		}, codes.InvalidArgument, "page_token: not a token this server issued"},
		{"malformed page token", func(ctx context.Context) error {
			_, err := loc.Agents.ListAgents(ctx, &agentv1.ListAgentsRequest{PageToken: "x"})
			return err
		}, codes.InvalidArgument, "page_token: not a token this server issued"},
		{"no key", func(ctx context.Context) error {
			_, err := loc.Agents.GetAgent(ctx, &agentv1.GetAgentRequest{})
			return err
		}, codes.InvalidArgument, "key: name or spiffe_id is required"},
		{"malformed SPIFFE ID", func(ctx context.Context) error {
			_, err := loc.Agents.GetAgent(ctx, &agentv1.GetAgentRequest{Key: &agentv1.GetAgentRequest_SpiffeId{SpiffeId: "agent/writer"}})
			return err
		}, codes.InvalidArgument, "spiffe_id: scheme is missing or invalid"},
		{"unknown name", func(ctx context.Context) error {
			_, err := loc.Agents.GetAgent(ctx, &agentv1.GetAgentRequest{Key: &agentv1.GetAgentRequest_Name{Name: "ghost"}})
			return err
		}, codes.NotFound, "no declared agent by that key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if st, _ := status.FromError(tt.call(ctxT(t))); st.Code() != tt.code || st.Message() != tt.msg {
				t.Fatalf("error = %v, want %s %q", st.Err(), tt.code, tt.msg)
			}
		})
	}
}

// TestAgentStoreFailures: a store that fails, or holds a record that does
// not decode, answers UNAVAILABLE; nothing is guessed.
func TestAgentStoreFailures(t *testing.T) {
	e := newEnv(t)
	loc := e.Local(t)
	list := func(ctx context.Context) error {
		_, err := loc.Agents.ListAgents(ctx, &agentv1.ListAgentsRequest{})
		return err
	}
	get := func(ctx context.Context) error {
		_, err := loc.Agents.GetAgent(ctx, &agentv1.GetAgentRequest{Key: &agentv1.GetAgentRequest_Name{Name: "writer"}})
		return err
	}
	servertest.RunStoreFailures(t, e, []servertest.StoreFailure{
		{Name: "list", Errs: []error{servertest.ErrStoreDown}, Call: list, Code: codes.Unavailable, Msg: "failed to list agents"},
		{Name: "get", Errs: []error{servertest.ErrStoreDown}, Call: get, Code: codes.Unavailable, Msg: "failed to read agents"},
	})
	for name, spec := range map[string][]byte{"corrupt": []byte("{"), "another agent's": mustSpec(t, e, "orchestrator")} {
		rec, err := e.Store.GetAgent(ctxT(t), "writer")
		if err != nil {
			t.Fatal(err)
		}
		rec.Spec = spec
		if err := e.Store.PutAgent(ctxT(t), rec); err != nil {
			t.Fatal(err)
		}
		for _, call := range []func(context.Context) error{list, get} {
			if st, _ := status.FromError(call(ctxT(t))); st.Code() != codes.Unavailable || st.Message() != "failed to read agent writer" {
				t.Fatalf("%s record: %v", name, st.Err())
			}
		}
	}
}

func mustSpec(t *testing.T, e *servertest.Env, name string) []byte {
	t.Helper()
	rec, err := e.Store.GetAgent(ctxT(t), name)
	if err != nil {
		t.Fatal(err)
	}
	return rec.Spec
}
