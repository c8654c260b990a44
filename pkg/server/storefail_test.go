package server_test

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/agentid/agentid/pkg/audit"
	"github.com/agentid/agentid/pkg/server/servertest"
	"github.com/agentid/agentid/pkg/store"
	auditv1 "github.com/agentid/agentid/proto/agentid/audit/v1"
	delegationv1 "github.com/agentid/agentid/proto/agentid/delegation/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// errStoreDown is what the fixture's store fails with: an outage, not a
// refusal (no store sentinel).
var errStoreDown = errors.New("storetest: injected outage")

// storeState is what a failed request must leave unchanged: the stored
// delegations and their states, and the audit log's head.
type storeState struct {
	delegations map[string]string
	head        audit.Anchor
}

func stateOf(tb testing.TB, e *servertest.Env) storeState {
	tb.Helper()
	ctx := context.Background()
	st := storeState{delegations: map[string]string{}}
	page := store.Page{Size: store.MaxPageSize}
	for {
		list, next, err := e.Store.ListDelegations(ctx, store.Filter{}, page)
		if err != nil {
			tb.Fatal(err)
		}
		for _, d := range list {
			st.delegations[d.ID.String()] = d.State.String()
		}
		if next == "" {
			break
		}
		page.Token = next
	}
	var err error
	if st.head, err = e.Store.AuditHead(ctx); err != nil {
		tb.Fatal(err)
	}
	return st
}

func (s storeState) equal(o storeState) bool {
	if s.head != o.head || len(s.delegations) != len(o.delegations) {
		return false
	}
	for id, state := range s.delegations {
		if o.delegations[id] != state {
			return false
		}
	}
	return true
}

// storeFailure is one request whose store call fails.
type storeFailure struct {
	name string
	// errs are queued on the fixture's store in order (nil lets a call
	// through); every one must be taken by the request.
	errs []error
	call func(ctx context.Context) error
	code codes.Code
	msg  string
	// wrote: the request's write committed before the failing read (the
	// answer is still UNAVAILABLE; a retry finds it done).
	wrote bool
}

func runStoreFailures(t *testing.T, e *servertest.Env, tests []storeFailure) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := stateOf(t, e)
			e.Faults.AppendNextError(tt.errs...)
			err := tt.call(ctxT(t))
			pending := e.Faults.Pending()
			e.Faults.SetNextError(nil)
			if st, _ := status.FromError(err); st.Code() != tt.code || st.Message() != tt.msg {
				t.Fatalf("error = %v, want %s %q", err, tt.code, tt.msg)
			}
			if pending != 0 {
				t.Fatalf("%d injected errors were not reached", pending)
			}
			if after := stateOf(t, e); after.equal(before) == tt.wrote {
				t.Fatalf("store before %v, after %v (wrote: %v)", before, after, tt.wrote)
			}
		})
	}
}

// recvAll reads a stream to its end and returns its error (nil at EOF).
func recvAll[T any](recv func() (T, error)) error {
	for {
		if _, err := recv(); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return err
		}
	}
}

// TestDelegationStoreFailures: every store failure of the delegation API
// answers UNAVAILABLE naming the operation (or the context's own code),
// issues nothing and writes nothing.
func TestDelegationStoreFailures(t *testing.T) {
	e := newEnv(t)
	front, orch, loc, verif := e.As(t, frontend), e.As(t, orchestrator), e.Local(t), e.As(t, verifierID)
	tok := e.AliceToken(t)
	root := create(t, front, tok, orchestrator.String(), time.Hour, "campaigns:read", "compliance:check")
	child := sub(t, orch, root.Id, analyst.String(), time.Hour, "campaigns:read")
	ttl := durationpb.New(time.Hour)
	createReq := &delegationv1.CreateDelegationRequest{UserToken: tok, AgentId: orchestrator.String(), Scopes: []string{"campaigns:read"}, Ttl: ttl}
	subReq := &delegationv1.CreateSubDelegationRequest{ParentId: root.Id, AgentId: analyst.String(), Scopes: []string{"campaigns:read"}, Ttl: ttl}
	watchErr := func(ctx context.Context, req *delegationv1.WatchDelegationsRequest, c clients) error {
		s, err := c.Delegations.WatchDelegations(ctx, req)
		if err != nil {
			return err
		}
		return recvAll(s.Recv)
	}
	revoke := func(id string) func(ctx context.Context) error {
		return func(ctx context.Context) error {
			_, err := loc.Delegations.RevokeDelegation(ctx, &delegationv1.RevokeDelegationRequest{Id: id, Reason: "test"})
			return err
		}
	}
	tests := []storeFailure{
		{name: "create", errs: []error{errStoreDown}, call: func(ctx context.Context) error {
			_, err := front.Delegations.CreateDelegation(ctx, createReq)
			return err
		}, code: codes.Unavailable, msg: "failed to create delegation"},
		{name: "create, deadline", errs: []error{context.DeadlineExceeded}, call: func(ctx context.Context) error {
			_, err := front.Delegations.CreateDelegation(ctx, createReq)
			return err
		}, code: codes.DeadlineExceeded, msg: context.DeadlineExceeded.Error()},
		{name: "create, canceled", errs: []error{context.Canceled}, call: func(ctx context.Context) error {
			_, err := front.Delegations.CreateDelegation(ctx, createReq)
			return err
		}, code: codes.Canceled, msg: context.Canceled.Error()},
		{name: "sub-delegate, reading the parent", errs: []error{errStoreDown}, call: func(ctx context.Context) error {
			_, err := orch.Delegations.CreateSubDelegation(ctx, subReq)
			return err
		}, code: codes.Unavailable, msg: "failed to read parent"},
		{name: "sub-delegate, writing", errs: []error{nil, errStoreDown}, call: func(ctx context.Context) error {
			_, err := orch.Delegations.CreateSubDelegation(ctx, subReq)
			return err
		}, code: codes.Unavailable, msg: "failed to create sub-delegation"},
		{name: "get", errs: []error{errStoreDown}, call: func(ctx context.Context) error {
			_, err := front.Delegations.GetDelegation(ctx, &delegationv1.GetDelegationRequest{Id: root.Id})
			return err
		}, code: codes.Unavailable, msg: "failed to read delegation"},
		{name: "list", errs: []error{errStoreDown}, call: func(ctx context.Context) error {
			_, err := loc.Delegations.ListDelegations(ctx, &delegationv1.ListDelegationsRequest{})
			return err
		}, code: codes.Unavailable, msg: "failed to list delegations"},
		{name: "revoke, reading", errs: []error{errStoreDown}, call: revoke(child.Id),
			code: codes.Unavailable, msg: "failed to read delegation"},
		{name: "revoke, reading ancestors", errs: []error{nil, errStoreDown}, call: revoke(child.Id),
			code: codes.Unavailable, msg: "failed to read ancestors"},
		{name: "revoke, writing", errs: []error{nil, nil, errStoreDown}, call: revoke(child.Id),
			code: codes.Unavailable, msg: "failed to revoke delegation"},
		{name: "watch, snapshot", errs: []error{errStoreDown}, call: func(ctx context.Context) error {
			return watchErr(ctx, &delegationv1.WatchDelegationsRequest{}, loc)
		}, code: codes.Unavailable, msg: "failed to read snapshot"},
		{name: "watch revoked only, revision", errs: []error{errStoreDown}, call: func(ctx context.Context) error {
			return watchErr(ctx, &delegationv1.WatchDelegationsRequest{RevokedOnly: true}, verif)
		}, code: codes.Unavailable, msg: "failed to read snapshot"},
		{name: "watch revoked only, listing", errs: []error{nil, errStoreDown}, call: func(ctx context.Context) error {
			return watchErr(ctx, &delegationv1.WatchDelegationsRequest{RevokedOnly: true}, verif)
		}, code: codes.Unavailable, msg: "failed to read snapshot"},
		{name: "watch, changes", errs: []error{errStoreDown}, call: func(ctx context.Context) error {
			return watchErr(ctx, &delegationv1.WatchDelegationsRequest{SinceRevision: 1}, loc)
		}, code: codes.Unavailable, msg: "failed to read changes"},
		// The revocation committed; only the read of its result failed. The
		// caller retries and finds it revoked (RevokeDelegation is
		// idempotent).
		{name: "revoke, reading the result", errs: []error{nil, nil, nil, errStoreDown}, call: revoke(child.Id),
			code: codes.Unavailable, msg: "failed to read delegation", wrote: true},
	}
	runStoreFailures(t, e, tests)

	// A denied event the store cannot record fails nothing but the record:
	// the caller still gets its refusal, and nothing is written.
	before := stateOf(t, e)
	e.Faults.AppendNextError(nil, errStoreDown) // the parent is read, the event fails
	_, err := e.As(t, stranger).Delegations.CreateSubDelegation(ctxT(t), subReq)
	if st, _ := status.FromError(err); st.Code() != codes.NotFound || st.Message() != "parent_id: no such delegation" || e.Faults.Pending() != 0 {
		t.Fatalf("sub-delegation by a stranger with the denied event failing = %v (pending %d)", err, e.Faults.Pending())
	}
	if !stateOf(t, e).equal(before) {
		t.Fatal("a refused request wrote to the store")
	}
}

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
		return recvAll(s.Recv)
	}
	now := timestamppb.New(e.Clock.Now())
	issuance := &auditv1.RecordTokenIssuanceRequest{Issuances: []*auditv1.TokenIssuance{{
		DelegationId: d.Id, AgentId: orchestrator.String(), Audiences: []string{"crm"}, IssuedAt: now, ExpiresAt: now}}}
	tests := []storeFailure{
		{name: "list", errs: []error{errStoreDown}, call: func(ctx context.Context) error {
			_, err := loc.Audit.ListEvents(ctx, &auditv1.ListEventsRequest{})
			return err
		}, code: codes.Unavailable, msg: "failed to list events"},
		{name: "export, base", errs: []error{errStoreDown}, call: export, code: codes.Unavailable, msg: "failed to read audit base"},
		{name: "export, head", errs: []error{nil, errStoreDown}, call: export, code: codes.Unavailable, msg: "failed to read audit head"},
		{name: "export, events", errs: []error{nil, nil, errStoreDown}, call: export, code: codes.Unavailable, msg: "failed to export events"},
		{name: "prune", errs: []error{errStoreDown}, call: func(ctx context.Context) error {
			_, err := loc.Audit.PruneEvents(ctx, &auditv1.PruneEventsRequest{ThroughSequence: head.Sequence, ThroughHash: head.Hash[:]})
			return err
		}, code: codes.Unavailable, msg: "failed to prune audit events"},
		{name: "record issuance, reading the delegation", errs: []error{errStoreDown}, call: func(ctx context.Context) error {
			_, err := loc.Audit.RecordTokenIssuance(ctx, issuance)
			return err
		}, code: codes.Unavailable, msg: "failed to read delegation"},
		{name: "record issuance, appending", errs: []error{nil, errStoreDown}, call: func(ctx context.Context) error {
			_, err := loc.Audit.RecordTokenIssuance(ctx, issuance)
			return err
		}, code: codes.Unavailable, msg: "failed to record token issuance"},
	}
	runStoreFailures(t, e, tests)
}
