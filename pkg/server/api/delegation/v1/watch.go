package delegation

import (
	"context"
	"errors"
	"github.com/agentid/agentid/pkg/server/api"
	"time"

	"github.com/agentid/agentid/pkg/apiconv"
	"github.com/agentid/agentid/pkg/audit"
	"github.com/agentid/agentid/pkg/delegation"
	"github.com/agentid/agentid/pkg/store"
	delegationv1 "github.com/agentid/agentid/proto/agentid/delegation/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// changesPerRead bounds one read of the revision log, so a far-behind
// watcher catches up in steps instead of one huge transaction.
const changesPerRead = 1000

// WatchDelegations streams a snapshot (or resumes after a revision), then
// every committed change; see the proto for the contract. Each stream reads
// the store's revision log itself when the store signals a commit, so a slow
// client never holds up writers or other streams.
func (s *Service) WatchDelegations(req *delegationv1.WatchDelegationsRequest, stream grpc.ServerStreamingServer[delegationv1.WatchDelegationsResponse]) error {
	ctx := stream.Context()
	c := api.CallerFrom(ctx)
	if !s.access.CanWatch(c, req.GetRevokedOnly()) {
		s.deny(ctx, "WatchDelegations", c, "not_allowed", "", audit.Event{})
		if s.access.CanWatch(c, true) {
			return status.Error(codes.PermissionDenied, "verifiers may only watch with revoked_only")
		}
		return status.Error(codes.PermissionDenied, "caller may not watch delegations")
	}
	revokedOnly := req.GetRevokedOnly()
	render := func(d *delegationv1.Delegation) *delegationv1.Delegation { return d }
	if revokedOnly {
		render = denyListEntry
	}
	notify, stop := s.store.Notify()
	defer stop()
	s.metrics.Watchers.Inc()
	defer s.metrics.Watchers.Dec()

	// The heartbeat timer restarts on every message, so a quiet stream gets
	// a progress message exactly one heartbeat after the last thing sent.
	heartbeat := time.NewTimer(s.heartbeat)
	defer heartbeat.Stop()
	send := func(m *delegationv1.WatchDelegationsResponse) error {
		heartbeat.Reset(s.heartbeat)
		return stream.Send(m)
	}

	since := store.Revision(req.GetSinceRevision())
	resumed := since > 0
	if !resumed {
		snap, rev, err := s.snapshot(ctx, revokedOnly)
		if err != nil {
			return s.storeError("read snapshot", err)
		}
		now := s.clock()
		chunk := &delegationv1.SnapshotChunk{}
		for _, dl := range snap {
			if !now.Before(dl.ExpiresAt) {
				continue
			}
			chunk.Delegations = append(chunk.Delegations, render(apiconv.DelegationToProto(dl, 0, now)))
			if len(chunk.Delegations) == snapshotChunk {
				if err := send(&delegationv1.WatchDelegationsResponse{Kind: &delegationv1.WatchDelegationsResponse_Snapshot{Snapshot: chunk}}); err != nil {
					return err
				}
				chunk = &delegationv1.SnapshotChunk{}
			}
		}
		if len(chunk.Delegations) > 0 {
			if err := send(&delegationv1.WatchDelegationsResponse{Kind: &delegationv1.WatchDelegationsResponse_Snapshot{Snapshot: chunk}}); err != nil {
				return err
			}
		}
		if err := send(&delegationv1.WatchDelegationsResponse{Kind: &delegationv1.WatchDelegationsResponse_SnapshotEnd{
			SnapshotEnd: &delegationv1.SnapshotEnd{Revision: uint64(rev)}}}); err != nil {
			return err
		}
		since = rev
	}

	progress := func() error {
		return send(&delegationv1.WatchDelegationsResponse{Kind: &delegationv1.WatchDelegationsResponse_Progress{
			Progress: &delegationv1.WatchProgress{Revision: uint64(since), Time: timestamppb.New(s.clock())}}})
	}
	backlogDone := !resumed
	for {
		changes, err := s.store.Changes(ctx, since, changesPerRead)
		if errors.Is(err, store.ErrCompacted) || errors.Is(err, store.ErrFutureRevision) {
			return status.Errorf(codes.OutOfRange, "revision %d is not in the server's log: watch again from 0", since)
		}
		if err != nil {
			return s.storeError("read changes", err)
		}
		now := s.clock()
		for _, ch := range changes {
			since = ch.Revision
			if revokedOnly && ch.Kind != store.ChangeRevoked {
				continue
			}
			typ := delegationv1.ChangeType_CHANGE_TYPE_CREATED
			if ch.Kind == store.ChangeRevoked {
				typ = delegationv1.ChangeType_CHANGE_TYPE_REVOKED
			}
			if err := send(&delegationv1.WatchDelegationsResponse{Kind: &delegationv1.WatchDelegationsResponse_Change{
				Change: &delegationv1.DelegationChange{Revision: uint64(ch.Revision), Type: typ, Delegation: render(apiconv.DelegationToProto(ch.Delegation, uint64(ch.Revision), now))}}}); err != nil {
				return err
			}
		}
		if len(changes) == changesPerRead {
			continue
		}
		if !backlogDone {
			backlogDone = true
			if err := progress(); err != nil {
				return err
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-s.closing:
			return status.Error(codes.Unavailable, "server shutting down")
		case <-notify:
		case <-heartbeat.C:
			if err := progress(); err != nil {
				return err
			}
		}
	}
}

// snapshot returns what a fresh watch starts from and the revision it
// reflects. For revoked-only watchers (verifiers) that is every revoked
// delegation still stored (Purge deletes them a day after their expiry, so
// the list stays bounded by recent revocations): the revision is read first, so a revocation that lands while
// the list is read is in the list or after the revision, and applying it
// twice is harmless.
func (s *Service) snapshot(ctx context.Context, revokedOnly bool) ([]*delegation.Delegation, store.Revision, error) {
	if !revokedOnly {
		return s.store.Snapshot(ctx)
	}
	rev, err := s.store.Revision(ctx)
	if err != nil {
		return nil, 0, err
	}
	var out []*delegation.Delegation
	page := store.Page{Size: store.MaxPageSize}
	for {
		list, next, err := s.store.ListDelegations(ctx, store.Filter{State: delegation.StateRevoked}, page)
		if err != nil {
			return nil, 0, err
		}
		out = append(out, list...)
		if next == "" {
			return out, rev, nil
		}
		page.Token = next
	}
}

// denyListEntry keeps what a verifier needs to reject tokens: which
// delegation, until when. Verifiers are services, not readers of users'
// grants, so the principal, scopes, chain and intent stay out.
func denyListEntry(d *delegationv1.Delegation) *delegationv1.Delegation {
	return &delegationv1.Delegation{
		Id: d.Id, RootId: d.RootId, AgentId: d.AgentId, State: d.State,
		ExpiresAt: d.ExpiresAt, RevokedAt: d.RevokedAt, Revision: d.Revision,
	}
}
