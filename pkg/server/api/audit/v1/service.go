// Package audit is agentid-server's AuditService
// (proto/agentid/audit/v1): reading, exporting and pruning the audit log,
// and the composer's records of the delegated tokens it issued.
package audit

import (
	"context"
	"errors"
	"github.com/agentid/agentid/pkg/server/api"
	"github.com/agentid/agentid/pkg/server/authz"
	"strconv"
	"strings"
	"time"

	"github.com/agentid/agentid/pkg/apiconv"
	"github.com/agentid/agentid/pkg/audit"
	"github.com/agentid/agentid/pkg/delegation"
	"github.com/agentid/agentid/pkg/store"
	auditv1 "github.com/agentid/agentid/proto/agentid/audit/v1"
	"github.com/sirupsen/logrus"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// MaxIssuanceBatch bounds one RecordTokenIssuance call (audit's wire
// limit, defined once there).
const MaxIssuanceBatch = audit.MaxIssuanceBatch

// Bounds of one issuance record's audiences (audit's wire limits).
const (
	maxIssuanceAudiences      = audit.MaxIssuanceAudiences
	maxIssuanceAudienceLength = audit.MaxIssuanceAudienceLength
)

// Config is what the service needs.
type Config struct {
	Store  store.Store
	Access authz.Access
	// Denier records refusals; nil: one of the service's own.
	Denier *api.Denier
	// Metrics nil: unregistered ones.
	Metrics *api.Metrics
	// Clock defaults to time.Now.
	Clock func() time.Time
	// Log defaults to a logger that discards.
	Log logrus.FieldLogger
}

// Service implements auditv1.AuditServiceServer. It embeds the Unsafe
// interface, not the Unimplemented struct: an RPC added to the proto fails
// to compile here until it is written.
type Service struct {
	auditv1.UnsafeAuditServiceServer

	store   store.Store
	access  authz.Access
	denier  *api.Denier
	metrics *api.Metrics
	clock   func() time.Time
	log     logrus.FieldLogger
}

// New returns the service.
func New(c Config) *Service {
	s := &Service{store: c.Store, access: c.Access, metrics: c.Metrics, clock: api.ClockOrNow(c.Clock), log: api.LogOrDiscard(c.Log)}
	if s.metrics == nil {
		s.metrics = api.NewUnregisteredMetrics()
	}
	s.denier = c.Denier
	if s.denier == nil {
		s.denier = api.NewDenier(api.DenierConfig{Store: c.Store, Metrics: s.metrics, Log: s.log, Clock: s.clock})
	}
	return s
}

// RegisterService registers the service on a gRPC server.
func RegisterService(g grpc.ServiceRegistrar, s *Service) {
	auditv1.RegisterAuditServiceServer(g, s)
}

func (s *Service) storeError(op string, err error) error {
	return api.StoreError(s.log, s.metrics, op, err)
}

func (s *Service) reader(ctx context.Context) error {
	c := api.CallerFrom(ctx)
	if !s.access.IsReader(c) {
		return status.Error(codes.PermissionDenied, "caller may not read the audit log")
	}
	return nil
}

// ListEvents implements auditv1.AuditServiceServer; proto/ documents the RPC, the package README who may call it.
func (s *Service) ListEvents(ctx context.Context, req *auditv1.ListEventsRequest) (*auditv1.ListEventsResponse, error) {
	if err := s.reader(ctx); err != nil {
		return nil, err
	}
	if req.GetPageSize() < 0 {
		return nil, status.Error(codes.InvalidArgument, "page_size: must not be negative")
	}
	f := store.EventFilter{DelegationID: req.GetDelegationId(), Type: audit.Type(req.GetType()), AfterSeq: req.GetAfterSequence()}
	if f.DelegationID != "" {
		if _, err := api.ParseDelegationID("delegation_id", f.DelegationID); err != nil {
			return nil, err
		}
	}
	if f.Type != audit.TypeUnspecified && !f.Type.Valid() {
		return nil, status.Errorf(codes.InvalidArgument, "type: unknown value %d", req.GetType())
	}
	events, next, err := s.store.ListEvents(ctx, f, store.Page{Size: int(req.GetPageSize()), Token: req.GetPageToken()})
	if errors.Is(err, store.ErrInvalidArgument) {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	if err != nil {
		return nil, s.storeError("list events", err)
	}
	resp := &auditv1.ListEventsResponse{NextPageToken: next}
	for i := range events {
		resp.Events = append(resp.Events, apiconv.EventToProto(&events[i]))
	}
	return resp, nil
}

// ExportEvents streams the log after after_sequence up to the last event
// appended when the call started, in pages, so an export has a defined end
// even while events keep coming. A pruned log starts after its base: the
// export then starts there too, and its first message carries the base, so
// the client can tell the operator where the exported chain starts.
func (s *Service) ExportEvents(req *auditv1.ExportEventsRequest, stream grpc.ServerStreamingServer[auditv1.ExportEventsResponse]) error {
	ctx := stream.Context()
	if err := s.reader(ctx); err != nil {
		return err
	}
	// The base before the head: a prune between the two reads moves the
	// base past events the export then misses, which the gap check below
	// reports instead of sending a broken chain.
	base, err := s.store.AuditBase(ctx)
	if err != nil {
		return s.storeError("read audit base", err)
	}
	head, err := s.store.AuditHead(ctx)
	if err != nil {
		return s.storeError("read audit head", err)
	}
	page := store.Page{Size: store.MaxPageSize}
	after := max(req.GetAfterSequence(), base.Sequence)
	f := store.EventFilter{AfterSeq: after}
	msg := &auditv1.ExportEventsResponse{Base: apiconv.AnchorToProto(base)}
	next := after + 1
	for {
		events, token, err := s.store.ListEvents(ctx, f, page)
		if err != nil {
			return s.storeError("export events", err)
		}
		for i := range events {
			if events[i].Sequence > head.Sequence {
				token = ""
				break
			}
			if events[i].Sequence != next {
				// Only a prune running during the export skips events.
				return status.Errorf(codes.Aborted, "the audit log was pruned during the export: event %d is gone; export again", next)
			}
			next++
			msg.Events = append(msg.Events, apiconv.EventToProto(&events[i]))
		}
		if len(msg.Events) > 0 || msg.Base != nil {
			if err := stream.Send(msg); err != nil {
				return err
			}
		}
		if token == "" {
			if next <= head.Sequence {
				// A prune through the head's part of the log committed
				// while the export ran: the events it promised are gone.
				return status.Errorf(codes.Aborted, "the audit log was pruned during the export: event %d is gone; export again", next)
			}
			return nil
		}
		page.Token = token
		msg = &auditv1.ExportEventsResponse{}
	}
}

// PruneEvents deletes the log up to an anchor the caller archived. The
// store checks the anchor against the stored event and records the prune
// in the log itself, with the caller as actor.
func (s *Service) PruneEvents(ctx context.Context, req *auditv1.PruneEventsRequest) (*auditv1.PruneEventsResponse, error) {
	c := api.CallerFrom(ctx)
	if !s.access.CanPruneAudit(c) {
		s.denier.Deny(ctx, "PruneEvents", c, "not_allowed", "", audit.Event{})
		return nil, status.Error(codes.PermissionDenied, "only admins may prune the audit log")
	}
	var through audit.Anchor
	if req.GetThroughSequence() == 0 {
		return nil, status.Error(codes.InvalidArgument, "through_sequence: is required")
	}
	if n := len(req.GetThroughHash()); n != len(through.Hash) {
		return nil, status.Errorf(codes.InvalidArgument, "through_hash: must be %d bytes, got %d", len(through.Hash), n)
	}
	through.Sequence = req.GetThroughSequence()
	copy(through.Hash[:], req.GetThroughHash())
	ev := audit.Event{Time: s.clock(), Type: audit.TypeAuditPruned, Actor: c.String()}
	n, err := s.store.PruneEvents(ctx, through, ev)
	switch {
	case errors.Is(err, store.ErrInvalidArgument):
		return nil, status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, store.ErrAnchorMismatch):
		return nil, status.Error(codes.FailedPrecondition, err.Error())
	case err != nil && n > 0:
		// The prune is committed and the events are gone from every read;
		// only the deletion of their bytes failed, and the store finishes
		// it on its next Open. Failing the call would make the caller retry
		// a prune that is already done.
		s.metrics.StoreErrors.Inc()
		s.log.WithError(err).Error("Audit log pruned, but deleting the pruned events failed")
	case err != nil:
		return nil, s.storeError("prune audit events", err)
	}
	s.metrics.AuditPruned.Add(float64(n))
	s.log.WithFields(logrus.Fields{"caller": c.String(), "through": through.String(), "pruned": n}).Info("Audit log pruned")
	return &auditv1.PruneEventsResponse{PrunedCount: uint64(n), Base: apiconv.AnchorToProto(through)}, nil //nolint:gosec // a count of deleted events, never negative
}

// RecordTokenIssuance appends one token-issued event per record, all or
// nothing. The records come from the composer on the local socket; they name
// the delegation, agent and audiences, never the token.
func (s *Service) RecordTokenIssuance(ctx context.Context, req *auditv1.RecordTokenIssuanceRequest) (*auditv1.RecordTokenIssuanceResponse, error) {
	c := api.CallerFrom(ctx)
	if !s.access.CanRecordIssuance(c) {
		s.denier.Deny(ctx, "RecordTokenIssuance", c, "not_allowed", "", audit.Event{})
		return nil, status.Error(codes.PermissionDenied, "only the local socket may record token issuance")
	}
	recs := req.GetIssuances()
	if len(recs) == 0 || len(recs) > MaxIssuanceBatch {
		return nil, status.Errorf(codes.InvalidArgument, "issuances: 1..%d records per call", MaxIssuanceBatch)
	}
	events := make([]audit.Event, 0, len(recs))
	users := map[delegation.ID]string{} // one lookup per delegation per batch
	for i, r := range recs {
		field := func(name string) string { return "issuances[" + strconv.Itoa(i) + "]." + name }
		id, err := delegation.ParseID(r.GetDelegationId())
		if err != nil {
			return nil, api.Invalid(field("delegation_id"), err)
		}
		agent, err := spiffeid.FromString(r.GetAgentId())
		if err != nil {
			return nil, api.Invalid(field("agent_id"), err)
		}
		if n := len(r.GetAudiences()); n == 0 || n > maxIssuanceAudiences {
			return nil, status.Errorf(codes.InvalidArgument, "%s: 1..%d audiences", field("audiences"), maxIssuanceAudiences)
		}
		for _, aud := range r.GetAudiences() {
			if aud == "" || len(aud) > maxIssuanceAudienceLength {
				return nil, status.Errorf(codes.InvalidArgument, "%s: each 1..%d bytes", field("audiences"), maxIssuanceAudienceLength)
			}
		}
		for _, ts := range []struct {
			name string
			ok   bool
		}{{"issued_at", r.GetIssuedAt().IsValid()}, {"expires_at", r.GetExpiresAt().IsValid()}} {
			if !ts.ok {
				return nil, status.Errorf(codes.InvalidArgument, "%s: is required", field(ts.name))
			}
		}
		// The actor of an issuance is the agent that received the token; the
		// user comes from the delegation, so the log answers "for whom".
		ev := audit.Event{
			Time: r.GetIssuedAt().AsTime(), Type: audit.TypeTokenIssued, Actor: agent.String(),
			DelegationID: id.String(), Agent: agent.String(),
			Detail: map[string]string{
				"audience":    api.TruncateUTF8(strings.Join(r.GetAudiences(), " "), audit.MaxDetailValueLength),
				"expires_at":  r.GetExpiresAt().AsTime().UTC().Format(time.RFC3339),
				"recorded_by": c.String(),
			},
		}
		user, seen := users[id]
		if !seen {
			if d, err := s.store.GetDelegation(ctx, id); err == nil {
				user = d.User.String()
			} else if !errors.Is(err, store.ErrNotFound) {
				return nil, s.storeError("read delegation", err)
			}
			users[id] = user
		}
		ev.User = user
		events = append(events, ev)
	}
	if err := s.store.AppendEvents(ctx, events...); err != nil {
		return nil, s.storeError("record token issuance", err)
	}
	s.metrics.Issuances.Add(float64(len(events)))
	return &auditv1.RecordTokenIssuanceResponse{RecordedCount: uint32(len(events))}, nil //nolint:gosec // a request holds at most MaxIssuanceBatch events (checked above)
}
