package delegation_test

import (
	"context"
	"testing"
	"time"

	"github.com/agentid/agentid/pkg/server/servertest"
	delegationv1 "github.com/agentid/agentid/proto/agentid/delegation/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

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
		return servertest.RecvAll(s.Recv)
	}
	revoke := func(id string) func(ctx context.Context) error {
		return func(ctx context.Context) error {
			_, err := loc.Delegations.RevokeDelegation(ctx, &delegationv1.RevokeDelegationRequest{Id: id, Reason: "test"})
			return err
		}
	}
	tests := []servertest.StoreFailure{
		{Name: "create", Errs: []error{servertest.ErrStoreDown}, Call: func(ctx context.Context) error {
			_, err := front.Delegations.CreateDelegation(ctx, createReq)
			return err
		}, Code: codes.Unavailable, Msg: "failed to create delegation"},
		{Name: "create, deadline", Errs: []error{context.DeadlineExceeded}, Call: func(ctx context.Context) error {
			_, err := front.Delegations.CreateDelegation(ctx, createReq)
			return err
		}, Code: codes.DeadlineExceeded, Msg: context.DeadlineExceeded.Error()},
		{Name: "create, canceled", Errs: []error{context.Canceled}, Call: func(ctx context.Context) error {
			_, err := front.Delegations.CreateDelegation(ctx, createReq)
			return err
		}, Code: codes.Canceled, Msg: context.Canceled.Error()},
		{Name: "sub-delegate, reading the parent", Errs: []error{servertest.ErrStoreDown}, Call: func(ctx context.Context) error {
			_, err := orch.Delegations.CreateSubDelegation(ctx, subReq)
			return err
		}, Code: codes.Unavailable, Msg: "failed to read parent"},
		{Name: "sub-delegate, writing", Errs: []error{nil, servertest.ErrStoreDown}, Call: func(ctx context.Context) error {
			_, err := orch.Delegations.CreateSubDelegation(ctx, subReq)
			return err
		}, Code: codes.Unavailable, Msg: "failed to create sub-delegation"},
		{Name: "get", Errs: []error{servertest.ErrStoreDown}, Call: func(ctx context.Context) error {
			_, err := front.Delegations.GetDelegation(ctx, &delegationv1.GetDelegationRequest{Id: root.Id})
			return err
		}, Code: codes.Unavailable, Msg: "failed to read delegation"},
		{Name: "list", Errs: []error{servertest.ErrStoreDown}, Call: func(ctx context.Context) error {
			_, err := loc.Delegations.ListDelegations(ctx, &delegationv1.ListDelegationsRequest{})
			return err
		}, Code: codes.Unavailable, Msg: "failed to list delegations"},
		{Name: "revoke, reading", Errs: []error{servertest.ErrStoreDown}, Call: revoke(child.Id),
			Code: codes.Unavailable, Msg: "failed to read delegation"},
		{Name: "revoke, reading ancestors", Errs: []error{nil, servertest.ErrStoreDown}, Call: revoke(child.Id),
			Code: codes.Unavailable, Msg: "failed to read ancestors"},
		{Name: "revoke, writing", Errs: []error{nil, nil, servertest.ErrStoreDown}, Call: revoke(child.Id),
			Code: codes.Unavailable, Msg: "failed to revoke delegation"},
		{Name: "watch, snapshot", Errs: []error{servertest.ErrStoreDown}, Call: func(ctx context.Context) error {
			return watchErr(ctx, &delegationv1.WatchDelegationsRequest{}, loc)
		}, Code: codes.Unavailable, Msg: "failed to read snapshot"},
		{Name: "watch revoked only, revision", Errs: []error{servertest.ErrStoreDown}, Call: func(ctx context.Context) error {
			return watchErr(ctx, &delegationv1.WatchDelegationsRequest{RevokedOnly: true}, verif)
		}, Code: codes.Unavailable, Msg: "failed to read snapshot"},
		{Name: "watch revoked only, listing", Errs: []error{nil, servertest.ErrStoreDown}, Call: func(ctx context.Context) error {
			return watchErr(ctx, &delegationv1.WatchDelegationsRequest{RevokedOnly: true}, verif)
		}, Code: codes.Unavailable, Msg: "failed to read snapshot"},
		{Name: "watch, changes", Errs: []error{servertest.ErrStoreDown}, Call: func(ctx context.Context) error {
			return watchErr(ctx, &delegationv1.WatchDelegationsRequest{SinceRevision: 1}, loc)
		}, Code: codes.Unavailable, Msg: "failed to read changes"},
		// The revocation committed; only the read of its result failed. The
		// caller retries and finds it revoked (RevokeDelegation is
		// idempotent).
		{Name: "revoke, reading the result", Errs: []error{nil, nil, nil, servertest.ErrStoreDown}, Call: revoke(child.Id),
			Code: codes.Unavailable, Msg: "failed to read delegation", Wrote: true},
	}
	servertest.RunStoreFailures(t, e, tests)

	// A denied event the store cannot record fails nothing but the record:
	// the caller still gets its refusal, and nothing is written.
	before := servertest.StoreStateOf(t, e)
	e.Faults.AppendNextError(nil, servertest.ErrStoreDown) // the parent is read, the event fails
	_, err := e.As(t, stranger).Delegations.CreateSubDelegation(ctxT(t), subReq)
	if st, _ := status.FromError(err); st.Code() != codes.NotFound || st.Message() != "parent_id: no such delegation" || e.Faults.Pending() != 0 {
		t.Fatalf("sub-delegation by a stranger with the denied event failing = %v (pending %d)", err, e.Faults.Pending())
	}
	if !servertest.StoreStateOf(t, e).Equal(before) {
		t.Fatal("a refused request wrote to the store")
	}
}
