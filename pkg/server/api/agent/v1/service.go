// Package agent is agentid-server's AgentService
// (proto/agentid/agent/v1): the declared agents and their SPIRE sync state,
// for admins and audit readers.
package agent

import (
	"context"
	"strconv"
	"time"

	"github.com/agentid/agentid/pkg/agent"
	"github.com/agentid/agentid/pkg/server/api"
	"github.com/agentid/agentid/pkg/server/authz"
	"github.com/agentid/agentid/pkg/store"
	agentv1 "github.com/agentid/agentid/proto/agentid/agent/v1"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// States reports the SPIRE sync state of declared agents by name (the
// reconciler).
type States func() map[string]Sync

// Sync is one agent's SPIRE registration state.
type Sync struct {
	State      agentv1.SyncState
	EntryID    string
	LastSynced time.Time
	LastError  string
}

// Config is what the service needs.
type Config struct {
	// Agents are the declared agents; required.
	Agents *agent.Set
	// States may be nil: every agent then reads as pending.
	States States
	Access authz.Access
}

// Service implements agentv1.AgentServiceServer. It embeds the Unsafe
// interface, not the Unimplemented struct: an RPC added to the proto fails
// to compile here until it is written.
type Service struct {
	agentv1.UnsafeAgentServiceServer

	agents *agent.Set
	states States
	access authz.Access
}

// New returns the service.
func New(c Config) *Service {
	return &Service{agents: c.Agents, states: c.States, access: c.Access}
}

// RegisterService registers the service on a gRPC server.
func RegisterService(g grpc.ServiceRegistrar, s *Service) {
	agentv1.RegisterAgentServiceServer(g, s)
}

func toProto(a *agent.Agent, states map[string]Sync) *agentv1.Agent {
	out := &agentv1.Agent{
		Name:         a.Name,
		SpiffeId:     a.SPIFFEID.String(),
		ParentId:     a.ParentID.String(),
		ScopeCeiling: a.ScopeCeiling.Strings(),
		X509SvidTtl:  durationpb.New(a.X509SVIDTTL),
		JwtSvidTtl:   durationpb.New(a.JWTSVIDTTL),
		SyncState:    agentv1.SyncState_SYNC_STATE_PENDING,
	}
	for _, sel := range a.Selectors {
		out.Selectors = append(out.Selectors, &agentv1.Selector{Type: sel.Type, Value: sel.Value})
	}
	for _, sub := range a.SubAgents {
		out.AllowedSubAgents = append(out.AllowedSubAgents, sub.String())
	}
	if st, ok := states[a.Name]; ok {
		out.SyncState = st.State
		out.EntryId = st.EntryID
		out.LastError = st.LastError
		if !st.LastSynced.IsZero() {
			out.LastSyncedAt = timestamppb.New(st.LastSynced)
		}
	}
	return out
}

func (s *Service) syncStates() map[string]Sync {
	if s.states == nil {
		return nil
	}
	return s.states()
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
	start := 0
	if tok := req.GetPageToken(); tok != "" {
		var err error
		if start, err = strconv.Atoi(tok); err != nil || start < 0 || start > s.agents.Len() {
			return nil, status.Error(codes.InvalidArgument, "page_token: not a token this server issued")
		}
	}
	states := s.syncStates()
	resp := &agentv1.ListAgentsResponse{}
	i := start
	for ; i < s.agents.Len() && len(resp.Agents) < size; i++ {
		p := toProto(s.agents.At(i), states)
		if want := req.GetSyncState(); want != agentv1.SyncState_SYNC_STATE_UNSPECIFIED && p.SyncState != want {
			continue
		}
		resp.Agents = append(resp.Agents, p)
	}
	if i < s.agents.Len() {
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
	var found *agent.Agent
	var ok bool
	switch key := req.GetKey().(type) {
	case *agentv1.GetAgentRequest_Name:
		found, ok = s.agents.ByName(key.Name)
	case *agentv1.GetAgentRequest_SpiffeId:
		id, err := spiffeid.FromString(key.SpiffeId)
		if err != nil {
			return nil, api.Invalid("spiffe_id", err)
		}
		found, ok = s.agents.ByID(id)
	default:
		return nil, status.Error(codes.InvalidArgument, "key: name or spiffe_id is required")
	}
	if !ok {
		return nil, status.Error(codes.NotFound, "no declared agent by that key")
	}
	return &agentv1.GetAgentResponse{Agent: toProto(found, s.syncStates())}, nil
}
