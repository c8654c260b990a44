// Package agent is agentid-server's AgentService
// (proto/agentid/agent/v1): the declared agents and their SPIRE sync state,
// for admins and audit readers.
//
// It answers from the store's agent registry, which the server writes from
// its configuration at start-up and from the reconciler after each change
// of an agent's state (pkg/server), so every server on one store answers the
// same.
package agent

import (
	"context"
	"errors"
	"strconv"

	"github.com/agentid/agentid/pkg/agent"
	"github.com/agentid/agentid/pkg/server/api"
	"github.com/agentid/agentid/pkg/server/authz"
	"github.com/agentid/agentid/pkg/store"
	agentv1 "github.com/agentid/agentid/proto/agentid/agent/v1"
	"github.com/sirupsen/logrus"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Config is what the service needs.
type Config struct {
	// Store holds the agent registry; required.
	Store  store.Store
	Access authz.Access
	// Metrics nil: unregistered ones.
	Metrics *api.Metrics
	// Log defaults to a logger that discards.
	Log logrus.FieldLogger
}

// Service implements agentv1.AgentServiceServer. It embeds the Unsafe
// interface, not the Unimplemented struct: an RPC added to the proto fails
// to compile here until it is written.
type Service struct {
	agentv1.UnsafeAgentServiceServer

	store   store.Store
	access  authz.Access
	metrics *api.Metrics
	log     logrus.FieldLogger
}

// New returns the service.
func New(c Config) *Service {
	s := &Service{store: c.Store, access: c.Access, metrics: c.Metrics, log: api.LogOrDiscard(c.Log)}
	if s.metrics == nil {
		s.metrics = api.NewUnregisteredMetrics()
	}
	return s
}

// RegisterService registers the service on a gRPC server.
func RegisterService(g grpc.ServiceRegistrar, s *Service) {
	agentv1.RegisterAgentServiceServer(g, s)
}

var syncStates = map[string]agentv1.SyncState{
	"pending": agentv1.SyncState_SYNC_STATE_PENDING,
	"synced":  agentv1.SyncState_SYNC_STATE_SYNCED,
	"error":   agentv1.SyncState_SYNC_STATE_ERROR,
}

// toProto decodes one registry record. A record the store holds but that
// does not decode is a store failure: the answer would be a guess.
func (s *Service) toProto(r store.Agent) (*agentv1.Agent, error) {
	a, err := agent.Unmarshal(r.Spec)
	if err != nil {
		return nil, err
	}
	if a.Name != r.Name {
		return nil, errors.New("agent record holds another agent's declaration")
	}
	out := &agentv1.Agent{
		Name:         a.Name,
		SpiffeId:     a.SPIFFEID.String(),
		ScopeCeiling: a.ScopeCeiling.Strings(),
		X509SvidTtl:  durationpb.New(a.X509SVIDTTL),
		JwtSvidTtl:   durationpb.New(a.JWTSVIDTTL),
		SyncState:    agentv1.SyncState_SYNC_STATE_PENDING,
		EntryId:      r.EntryID,
		LastError:    r.LastError,
	}
	if !a.ParentID.IsZero() {
		out.ParentId = a.ParentID.String()
	}
	if st, ok := syncStates[r.SyncState]; ok {
		out.SyncState = st
	}
	for _, sel := range a.Selectors {
		out.Selectors = append(out.Selectors, &agentv1.Selector{Type: sel.Type, Value: sel.Value})
	}
	for _, sub := range a.SubAgents {
		out.AllowedSubAgents = append(out.AllowedSubAgents, sub.String())
	}
	if !r.LastSynced.IsZero() {
		out.LastSyncedAt = timestamppb.New(r.LastSynced)
	}
	return out, nil
}

func (s *Service) storeError(op string, err error) error {
	return api.StoreError(s.log, s.metrics, op, err)
}

// ListAgents pages through the declared agents, ordered by name. The page
// token is the index of the next agent: the declared set only changes with a
// restart, so an index is stable for a client's paging.
func (s *Service) ListAgents(ctx context.Context, req *agentv1.ListAgentsRequest) (*agentv1.ListAgentsResponse, error) {
	c := api.CallerFrom(ctx)
	if !s.access.IsReader(c) {
		return nil, status.Error(codes.PermissionDenied, "caller may not read agents")
	}
	size := int(req.GetPageSize())
	if size < 0 {
		return nil, status.Error(codes.InvalidArgument, "page_size: must not be negative")
	}
	if size == 0 {
		size = store.DefaultPageSize
	}
	size = min(size, store.MaxPageSize)
	records, err := s.store.ListAgents(ctx)
	if err != nil {
		return nil, s.storeError("list agents", err)
	}
	start := 0
	if tok := req.GetPageToken(); tok != "" {
		if start, err = strconv.Atoi(tok); err != nil || start < 0 || start > len(records) {
			return nil, status.Error(codes.InvalidArgument, "page_token: not a token this server issued")
		}
	}
	resp := &agentv1.ListAgentsResponse{}
	i := start
	for ; i < len(records) && len(resp.Agents) < size; i++ {
		p, err := s.toProto(records[i])
		if err != nil {
			return nil, s.storeError("read agent "+records[i].Name, err)
		}
		if want := req.GetSyncState(); want != agentv1.SyncState_SYNC_STATE_UNSPECIFIED && p.SyncState != want {
			continue
		}
		resp.Agents = append(resp.Agents, p)
	}
	if i < len(records) {
		resp.NextPageToken = strconv.Itoa(i)
	}
	return resp, nil
}

// GetAgent returns one declared agent by name or SPIFFE ID.
func (s *Service) GetAgent(ctx context.Context, req *agentv1.GetAgentRequest) (*agentv1.GetAgentResponse, error) {
	c := api.CallerFrom(ctx)
	if !s.access.IsReader(c) {
		return nil, status.Error(codes.PermissionDenied, "caller may not read agents")
	}
	var match func(store.Agent) bool
	switch key := req.GetKey().(type) {
	case *agentv1.GetAgentRequest_Name:
		match = func(r store.Agent) bool { return r.Name == key.Name }
	case *agentv1.GetAgentRequest_SpiffeId:
		id, err := spiffeid.FromString(key.SpiffeId)
		if err != nil {
			return nil, api.Invalid("spiffe_id", err)
		}
		match = func(r store.Agent) bool { return r.SPIFFEID == id.String() }
	default:
		return nil, status.Error(codes.InvalidArgument, "key: name or spiffe_id is required")
	}
	// The registry holds the declared agents only: a few, read whole.
	records, err := s.store.ListAgents(ctx)
	if err != nil {
		return nil, s.storeError("read agents", err)
	}
	for _, r := range records {
		if match(r) {
			p, err := s.toProto(r)
			if err != nil {
				return nil, s.storeError("read agent "+r.Name, err)
			}
			return &agentv1.GetAgentResponse{Agent: p}, nil
		}
	}
	return nil, status.Error(codes.NotFound, "no declared agent by that key")
}
