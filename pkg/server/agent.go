package server

import (
	"context"
	"slices"
	"strconv"
	"strings"

	"github.com/agentid/agentid/pkg/server/config"
	"github.com/agentid/agentid/pkg/store"
	agentv1 "github.com/agentid/agentid/proto/agentid/agent/v1"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

type agentService struct {
	agentv1.UnimplementedAgentServiceServer
	s *Server
}

func (a *agentService) toProto(spec *config.AgentSpec, states map[string]AgentSync) *agentv1.Agent {
	out := &agentv1.Agent{
		Name:         spec.Name,
		SpiffeId:     spec.SPIFFEID.String(),
		ParentId:     spec.ParentID.String(),
		ScopeCeiling: spec.ScopeCeiling.Strings(),
		X509SvidTtl:  durationpb.New(spec.X509SVIDTTL),
		JwtSvidTtl:   durationpb.New(spec.JWTSVIDTTL),
		SyncState:    agentv1.SyncState_SYNC_STATE_PENDING,
	}
	for _, sel := range spec.Selectors {
		out.Selectors = append(out.Selectors, &agentv1.Selector{Type: sel.Type, Value: sel.Value})
	}
	for _, sub := range spec.SubAgents {
		out.AllowedSubAgents = append(out.AllowedSubAgents, sub.String())
	}
	if st, ok := states[spec.Name]; ok {
		out.SyncState = st.State
		out.EntryId = st.EntryID
		out.LastError = st.LastError
		if !st.LastSynced.IsZero() {
			out.LastSyncedAt = timestamppb.New(st.LastSynced)
		}
	}
	return out
}

func (a *agentService) states() map[string]AgentSync {
	if a.s.agentStates == nil {
		return nil
	}
	return a.s.agentStates()
}

// ListAgents pages through the declared agents, ordered by name. The page
// token is the index of the next agent: the declared set only changes with a
// restart, so an index is stable for a client's paging.
func (a *agentService) ListAgents(ctx context.Context, req *agentv1.ListAgentsRequest) (*agentv1.ListAgentsResponse, error) {
	c := callerOf(ctx)
	if !a.s.access.isReader(c) {
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
		if start, err = strconv.Atoi(tok); err != nil || start < 0 || start > len(a.s.agents) {
			return nil, status.Error(codes.InvalidArgument, "page_token: not a token this server issued")
		}
	}
	sorted := make([]*config.AgentSpec, len(a.s.agents))
	for i := range a.s.agents {
		sorted[i] = &a.s.agents[i]
	}
	slices.SortFunc(sorted, func(x, y *config.AgentSpec) int { return strings.Compare(x.Name, y.Name) })
	states := a.states()
	resp := &agentv1.ListAgentsResponse{}
	i := start
	for ; i < len(sorted) && len(resp.Agents) < size; i++ {
		p := a.toProto(sorted[i], states)
		if want := req.GetSyncState(); want != agentv1.SyncState_SYNC_STATE_UNSPECIFIED && p.SyncState != want {
			continue
		}
		resp.Agents = append(resp.Agents, p)
	}
	if i < len(sorted) {
		resp.NextPageToken = strconv.Itoa(i)
	}
	return resp, nil
}

func (a *agentService) GetAgent(ctx context.Context, req *agentv1.GetAgentRequest) (*agentv1.GetAgentResponse, error) {
	c := callerOf(ctx)
	if !a.s.access.isReader(c) {
		return nil, status.Error(codes.PermissionDenied, "caller may not read agents")
	}
	var match func(*config.AgentSpec) bool
	switch key := req.GetKey().(type) {
	case *agentv1.GetAgentRequest_Name:
		match = func(s *config.AgentSpec) bool { return s.Name == key.Name }
	case *agentv1.GetAgentRequest_SpiffeId:
		id, err := spiffeid.FromString(key.SpiffeId)
		if err != nil {
			return nil, invalid("spiffe_id", err)
		}
		match = func(s *config.AgentSpec) bool { return s.SPIFFEID == id }
	default:
		return nil, status.Error(codes.InvalidArgument, "key: name or spiffe_id is required")
	}
	for i := range a.s.agents {
		if match(&a.s.agents[i]) {
			return &agentv1.GetAgentResponse{Agent: a.toProto(&a.s.agents[i], a.states())}, nil
		}
	}
	return nil, status.Error(codes.NotFound, "no declared agent by that key")
}
