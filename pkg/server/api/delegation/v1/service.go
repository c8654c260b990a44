// Package delegation is agentid-server's DelegationService
// (proto/agentid/delegation/v1): users delegate to agents, agents pass
// narrower slices on, delegations are read, revoked with their subtrees and
// watched. Each RPC's access rule is in pkg/server/authz and in its proto
// comment; every refusal past the syntax checks is a denied audit event.
package delegation

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/agentid/agentid/pkg/agent"
	"github.com/agentid/agentid/pkg/apiconv"
	"github.com/agentid/agentid/pkg/audit"
	"github.com/agentid/agentid/pkg/delegation"
	"github.com/agentid/agentid/pkg/oidcauth"
	"github.com/agentid/agentid/pkg/policy"
	"github.com/agentid/agentid/pkg/server/api"
	"github.com/agentid/agentid/pkg/server/authz"
	"github.com/agentid/agentid/pkg/store"
	delegationv1 "github.com/agentid/agentid/proto/agentid/delegation/v1"
	"github.com/sirupsen/logrus"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

// MaxTTL bounds any requested lifetime before the policy caps it further.
const MaxTTL = 30 * 24 * time.Hour

// Defaults of Config.
const (
	DefaultWatchHeartbeat  = 10 * time.Second
	DefaultRevokeFreshness = 5 * time.Minute
	// snapshotChunk is the most delegations one snapshot message carries.
	snapshotChunk = 500
)

// UserAuthenticator verifies a user's OIDC token (pkg/oidcauth).
type UserAuthenticator interface {
	Authenticate(ctx context.Context, rawToken string) (oidcauth.Identity, error)
}

// Decider applies the delegation policy (pkg/policy).
type Decider interface {
	Decide(ctx context.Context, in policy.Input) (policy.Decision, error)
}

// Config is what the service needs.
type Config struct {
	Store  store.Store
	Users  UserAuthenticator
	Policy Decider
	// Agents are the declared agents.
	Agents *agent.Set
	Access authz.Access
	// Denier records refusals; nil: one of the service's own.
	Denier *api.Denier
	// Metrics nil: unregistered ones.
	Metrics *api.Metrics
	// Clock defaults to time.Now.
	Clock func() time.Time
	// Log defaults to a logger that discards.
	Log logrus.FieldLogger
	// WatchHeartbeat is how often a quiet watch stream gets a progress
	// message (DefaultWatchHeartbeat).
	WatchHeartbeat time.Duration
	// RevokeFreshness is how recent (iat) a user's token must be to revoke
	// (DefaultRevokeFreshness).
	RevokeFreshness time.Duration
}

// Service implements delegationv1.DelegationServiceServer. It embeds the
// Unsafe interface, not the Unimplemented struct: an RPC added to the proto
// fails to compile here until it is written.
type Service struct {
	delegationv1.UnsafeDelegationServiceServer

	store     store.Store
	users     UserAuthenticator
	policy    Decider
	agents    *agent.Set
	access    authz.Access
	denier    *api.Denier
	metrics   *api.Metrics
	clock     func() time.Time
	log       logrus.FieldLogger
	heartbeat time.Duration
	freshness time.Duration
	closing   chan struct{}
	closeOnce func()
}

// New returns the service. Store, Users, Policy and Agents are required.
func New(c Config) (*Service, error) {
	if c.Store == nil || c.Users == nil || c.Policy == nil || c.Agents == nil {
		return nil, errors.New("delegation: store, user authenticator, policy and agents are required")
	}
	s := &Service{
		store: c.Store, users: c.Users, policy: c.Policy, agents: c.Agents, access: c.Access,
		metrics: c.Metrics, clock: api.ClockOrNow(c.Clock), log: api.LogOrDiscard(c.Log),
		heartbeat: c.WatchHeartbeat, freshness: c.RevokeFreshness, closing: make(chan struct{}),
	}
	if s.metrics == nil {
		s.metrics = api.NewUnregisteredMetrics()
	}
	s.denier = c.Denier
	if s.denier == nil {
		s.denier = api.NewDenier(api.DenierConfig{Store: c.Store, Metrics: s.metrics, Log: s.log, Clock: s.clock})
	}
	if s.heartbeat <= 0 {
		s.heartbeat = DefaultWatchHeartbeat
	}
	if s.freshness <= 0 {
		s.freshness = DefaultRevokeFreshness
	}
	s.closeOnce = sync.OnceFunc(func() { close(s.closing) })
	return s, nil
}

// RegisterService registers the service on a gRPC server.
func RegisterService(g grpc.ServiceRegistrar, s *Service) {
	delegationv1.RegisterDelegationServiceServer(g, s)
}

// Close ends every watch stream with UNAVAILABLE, so a graceful stop of the
// gRPC server does not wait for streams that never end by themselves.
// Clients resume from their last revision.
func (s *Service) Close() { s.closeOnce() }

func (s *Service) deny(ctx context.Context, rpc string, c api.Caller, reason, detail string, ev audit.Event) {
	s.denier.Deny(ctx, rpc, c, reason, detail, ev)
}

func (s *Service) storeError(op string, err error) error {
	return api.StoreError(s.log, s.metrics, op, err)
}

// grantRequest is the common part of both create requests, validated.
type grantRequest struct {
	agent  spiffeid.ID
	scopes delegation.ScopeSet
	ttl    time.Duration
	intent delegation.Intent
}

func parseGrant(agentID string, scopes []string, ttl *durationpb.Duration, intent string) (grantRequest, error) {
	var g grantRequest
	var err error
	if g.agent, err = api.ParseSPIFFEID("agent_id", agentID); err != nil {
		return g, err
	}
	if g.scopes, err = delegation.ParseScopes(scopes); err != nil {
		return g, api.Invalid("scopes", err)
	}
	if g.scopes.IsEmpty() {
		return g, status.Error(codes.InvalidArgument, "scopes: at least one scope is required")
	}
	if ttl == nil {
		return g, status.Error(codes.InvalidArgument, "ttl: is required")
	}
	if err := ttl.CheckValid(); err != nil {
		return g, api.Invalid("ttl", err)
	}
	if g.ttl = ttl.AsDuration(); g.ttl <= 0 || g.ttl > MaxTTL {
		return g, status.Errorf(codes.InvalidArgument, "ttl: must be positive and at most %s", MaxTTL)
	}
	if g.intent, err = delegation.ParseIntent(intent); err != nil {
		return g, api.Invalid("intent", err)
	}
	return g, nil
}

// authenticateUser verifies a user token. The caller only ever sees the
// fixed message; the reason goes to the log and a denied audit event.
func (s *Service) authenticateUser(ctx context.Context, rpc string, c api.Caller, token string, ev audit.Event) (oidcauth.Identity, error) {
	if token == "" {
		s.deny(ctx, rpc, c, "user_token_missing", "", ev)
		return oidcauth.Identity{}, status.Error(codes.Unauthenticated, oidcauth.ErrInvalidToken.Error())
	}
	id, err := s.users.Authenticate(ctx, token)
	if err == nil {
		return id, nil
	}
	reason := string(oidcauth.ReasonOf(err))
	s.deny(ctx, rpc, c, "user_token_"+reason, err.Error(), ev)
	if errors.Is(err, oidcauth.ErrIssuerUnavailable) {
		return oidcauth.Identity{}, status.Error(codes.Unavailable, oidcauth.ErrIssuerUnavailable.Error())
	}
	return oidcauth.Identity{}, status.Error(codes.Unauthenticated, oidcauth.ErrInvalidToken.Error())
}

// CreateDelegation implements delegationv1.DelegationServiceServer; proto/ documents the RPC, the package README who may call it.
func (s *Service) CreateDelegation(ctx context.Context, req *delegationv1.CreateDelegationRequest) (*delegationv1.CreateDelegationResponse, error) {
	const rpc = "CreateDelegation"
	c := api.CallerFrom(ctx)
	g, err := parseGrant(req.GetAgentId(), req.GetScopes(), req.GetTtl(), req.GetIntent())
	if err != nil {
		return nil, err
	}
	// The user's token is checked before anything about the registry is
	// revealed, so an unauthenticated caller cannot enumerate agents.
	ident, err := s.authenticateUser(ctx, rpc, c, req.GetUserToken(), audit.Event{Agent: g.agent.String()})
	if err != nil {
		return nil, err
	}
	declared, ok := s.agents.ByID(g.agent)
	if !ok {
		s.deny(ctx, rpc, c, "unknown_agent", "", audit.Event{Agent: g.agent.String(), User: ident.User.String()})
		return nil, status.Error(codes.NotFound, "agent_id: not a declared agent")
	}
	userEv := audit.Event{Agent: g.agent.String(), User: ident.User.String()}
	decision, err := s.policy.Decide(ctx, policy.Input{
		User: policy.User{
			Issuer: ident.User.Issuer(), Subject: ident.User.Subject(),
			Email: ident.User.Email(), Groups: ident.Groups,
		},
		Agent:  policy.Agent{ID: declared.SPIFFEID, Name: declared.Name, Ceiling: declared.ScopeCeiling},
		Caller: c.ID,
		Scopes: g.scopes,
		TTL:    g.ttl,
		Intent: g.intent.String(),
	})
	if err != nil {
		var denial *policy.Denial
		if errors.As(err, &denial) {
			s.deny(ctx, rpc, c, "policy", denial.Reason, userEv)
			return nil, status.Error(codes.PermissionDenied, denial.Error())
		}
		if errors.Is(err, policy.ErrInvalidInput) {
			s.deny(ctx, rpc, c, "policy_input", err.Error(), userEv)
			return nil, status.Error(codes.InvalidArgument, err.Error())
		}
		s.log.WithError(err).Error("Policy evaluation failed")
		return nil, status.Error(codes.Unavailable, "policy evaluation failed")
	}
	now := s.clock()
	dl, err := delegation.NewRoot(delegation.RootParams{
		Agent: declared.SPIFFEID, User: ident.User, Scopes: decision.Scopes, MaxDepth: decision.MaxDepth,
		Intent: g.intent, CreatedBy: c.ID, CreatedAt: now, ExpiresAt: now.Add(decision.TTL),
	})
	if err != nil {
		s.log.WithError(err).Error("Policy produced an invalid delegation")
		return nil, status.Error(codes.Internal, "failed to build delegation")
	}
	rev, err := s.store.CreateDelegation(ctx, dl, audit.Event{
		Time: now, Type: audit.TypeDelegationCreated, Actor: c.String(),
		DelegationID: dl.ID.String(), Agent: dl.Agent.String(), User: dl.User.String(),
		Detail: grantDetail(dl, decision.Rule),
	})
	if err != nil {
		return nil, s.storeError("create delegation", err)
	}
	s.metrics.Created.WithLabelValues("root").Inc()
	s.log.WithFields(logrus.Fields{"delegation_id": dl.ID.String(), "agent_id": dl.Agent.String(),
		"user": dl.User.String(), "rule": decision.Rule, "caller": c.String()}).Info("Delegation created")
	return &delegationv1.CreateDelegationResponse{Delegation: apiconv.DelegationToProto(dl, uint64(rev), now)}, nil
}

func grantDetail(d *delegation.Delegation, rule string) map[string]string {
	// Values are bounded by the audit format; the full record is in the
	// store, the event keeps what a reader of the log needs.
	detail := map[string]string{
		"scopes":     api.TruncateUTF8(d.Scopes.String(), audit.MaxDetailValueLength),
		"expires_at": d.ExpiresAt.UTC().Format(time.RFC3339),
		"chain":      api.TruncateUTF8(chainString(d), audit.MaxDetailValueLength),
	}
	if rule != "" {
		detail["rule"] = rule
	}
	if d.Intent.String() != "" {
		detail["intent"] = d.Intent.String()
	}
	if !d.Parent.IsZero() {
		detail["parent_id"] = d.Parent.String()
	}
	return detail
}

func chainString(d *delegation.Delegation) string {
	parts := make([]string, len(d.Chain))
	for i, a := range d.Chain {
		parts[i] = a.String()
	}
	return strings.Join(parts, " ")
}

// CreateSubDelegation implements delegationv1.DelegationServiceServer; proto/ documents the RPC, the package README who may call it.
func (s *Service) CreateSubDelegation(ctx context.Context, req *delegationv1.CreateSubDelegationRequest) (*delegationv1.CreateSubDelegationResponse, error) {
	const rpc = "CreateSubDelegation"
	c := api.CallerFrom(ctx)
	parentID, err := api.ParseDelegationID("parent_id", req.GetParentId())
	if err != nil {
		return nil, err
	}
	g, err := parseGrant(req.GetAgentId(), req.GetScopes(), req.GetTtl(), req.GetIntent())
	if err != nil {
		return nil, err
	}
	ev := audit.Event{DelegationID: parentID.String(), Agent: g.agent.String()}
	parent, err := s.store.GetDelegation(ctx, parentID)
	if errors.Is(err, store.ErrNotFound) {
		s.deny(ctx, rpc, c, "unknown_parent", "", ev)
		return nil, status.Error(codes.NotFound, "parent_id: no such delegation")
	}
	if err != nil {
		return nil, s.storeError("read parent", err)
	}
	ev.User = parent.User.String()
	if !s.access.CanSubDelegate(c, parent) {
		s.deny(ctx, rpc, c, "not_parent_agent", "", ev)
		if !s.access.CanSee(c, parent) {
			return nil, status.Error(codes.NotFound, "parent_id: no such delegation")
		}
		return nil, status.Error(codes.PermissionDenied, "only the parent delegation's agent may sub-delegate it")
	}
	child, ok := s.agents.ByID(g.agent)
	if !ok {
		s.deny(ctx, rpc, c, "unknown_agent", "", ev)
		return nil, status.Error(codes.NotFound, "agent_id: not a declared agent")
	}
	if from, ok := s.agents.ByID(parent.Agent); !ok || !from.MaySubDelegateTo(g.agent) {
		s.deny(ctx, rpc, c, "sub_agent_not_allowed", "", ev)
		return nil, status.Errorf(codes.PermissionDenied, "agent_id: %s is not an allowed sub-agent of %s", g.agent, parent.Agent)
	}
	if extra := g.scopes.Minus(child.ScopeCeiling); !extra.IsEmpty() {
		s.deny(ctx, rpc, c, "scope_ceiling", extra.String(), ev)
		return nil, status.Errorf(codes.PermissionDenied, "scopes: %s exceed the ceiling of %s", extra, g.agent)
	}
	now := s.clock()
	expires := now.Add(g.ttl)
	if expires.After(parent.ExpiresAt) {
		expires = parent.ExpiresAt
	}
	dl, err := delegation.NewChild(parent, delegation.ChildParams{
		Agent: g.agent, Scopes: g.scopes, Intent: g.intent, CreatedBy: c.ID, CreatedAt: now, ExpiresAt: expires,
	})
	if err != nil {
		code, reason := codes.InvalidArgument, "invalid"
		switch {
		case errors.Is(err, delegation.ErrScopeWidening):
			code, reason = codes.PermissionDenied, "scope_widening"
		case errors.Is(err, delegation.ErrParentInactive):
			code, reason = codes.FailedPrecondition, "parent_inactive"
		case errors.Is(err, delegation.ErrAgentInChain):
			code, reason = codes.PermissionDenied, "agent_in_chain"
		case errors.Is(err, delegation.ErrDepthExceeded):
			code, reason = codes.FailedPrecondition, "depth_exceeded"
		case errors.Is(err, delegation.ErrInvalidDelegation):
			code, reason = codes.FailedPrecondition, "invalid_chain"
		}
		s.deny(ctx, rpc, c, reason, err.Error(), ev)
		return nil, status.Error(code, err.Error())
	}
	rev, err := s.store.CreateDelegation(ctx, dl, audit.Event{
		Time: now, Type: audit.TypeSubDelegated, Actor: c.String(),
		DelegationID: dl.ID.String(), Agent: dl.Agent.String(), User: dl.User.String(),
		Detail: grantDetail(dl, ""),
	})
	if errors.Is(err, store.ErrParentInactive) {
		s.deny(ctx, rpc, c, "parent_inactive", "", ev)
		return nil, status.Errorf(codes.FailedPrecondition, "%v: parent %s is revoked", delegation.ErrParentInactive, parent.ID)
	}
	if err != nil {
		return nil, s.storeError("create sub-delegation", err)
	}
	s.metrics.Created.WithLabelValues("sub").Inc()
	s.log.WithFields(logrus.Fields{"delegation_id": dl.ID.String(), "parent_id": parent.ID.String(),
		"agent_id": dl.Agent.String(), "caller": c.String()}).Info("Sub-delegation created")
	return &delegationv1.CreateSubDelegationResponse{Delegation: apiconv.DelegationToProto(dl, uint64(rev), now)}, nil
}

// GetDelegation implements delegationv1.DelegationServiceServer; proto/ documents the RPC, the package README who may call it.
func (s *Service) GetDelegation(ctx context.Context, req *delegationv1.GetDelegationRequest) (*delegationv1.GetDelegationResponse, error) {
	c := api.CallerFrom(ctx)
	id, err := api.ParseDelegationID("id", req.GetId())
	if err != nil {
		return nil, err
	}
	dl, err := s.store.GetDelegation(ctx, id)
	if errors.Is(err, store.ErrNotFound) || err == nil && !s.access.CanSee(c, dl) {
		return nil, status.Error(codes.NotFound, "id: no such delegation")
	}
	if err != nil {
		return nil, s.storeError("read delegation", err)
	}
	return &delegationv1.GetDelegationResponse{Delegation: apiconv.DelegationToProto(dl, 0, s.clock())}, nil
}

// ListDelegations implements delegationv1.DelegationServiceServer; proto/ documents the RPC, the package README who may call it.
func (s *Service) ListDelegations(ctx context.Context, req *delegationv1.ListDelegationsRequest) (*delegationv1.ListDelegationsResponse, error) {
	c := api.CallerFrom(ctx)
	f := store.Filter{UserIssuer: req.GetPrincipalIssuer(), UserSubject: req.GetPrincipalSubject()}
	if (f.UserIssuer == "") != (f.UserSubject == "") {
		return nil, status.Error(codes.InvalidArgument, "principal_issuer, principal_subject: set both or neither")
	}
	if req.GetAgentId() != "" {
		id, err := api.ParseSPIFFEID("agent_id", req.GetAgentId())
		if err != nil {
			return nil, err
		}
		f.Agent = id.String()
	}
	// Callers who are not readers see only the delegations they hold: the
	// filter goes into the query, so neither the results nor the paging
	// reveal anything about others'.
	if !s.access.IsReader(c) {
		if f.Agent != "" && f.Agent != c.ID.String() {
			return &delegationv1.ListDelegationsResponse{}, nil
		}
		f.Agent = c.ID.String()
	}
	// EXPIRED and ACTIVE are told apart by the clock, not the store: both are
	// stored as active, so the page is filtered after the read.
	want := req.GetState()
	switch want {
	case delegationv1.State_STATE_UNSPECIFIED:
	case delegationv1.State_STATE_ACTIVE, delegationv1.State_STATE_EXPIRED:
		f.State = delegation.StateActive
	case delegationv1.State_STATE_REVOKED:
		f.State = delegation.StateRevoked
	default:
		return nil, status.Errorf(codes.InvalidArgument, "state: unknown value %d", want)
	}
	if req.GetPageSize() < 0 {
		return nil, status.Error(codes.InvalidArgument, "page_size: must not be negative")
	}
	list, next, err := s.store.ListDelegations(ctx, f, store.Page{Size: int(req.GetPageSize()), Token: req.GetPageToken()})
	if errors.Is(err, store.ErrInvalidArgument) {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	if err != nil {
		return nil, s.storeError("list delegations", err)
	}
	now := s.clock()
	resp := &delegationv1.ListDelegationsResponse{NextPageToken: next}
	for _, dl := range list {
		p := apiconv.DelegationToProto(dl, 0, now)
		if want != delegationv1.State_STATE_UNSPECIFIED && p.State != want {
			continue
		}
		resp.Delegations = append(resp.Delegations, p)
	}
	return resp, nil
}

// RevokeDelegation implements delegationv1.DelegationServiceServer; proto/ documents the RPC, the package README who may call it.
func (s *Service) RevokeDelegation(ctx context.Context, req *delegationv1.RevokeDelegationRequest) (*delegationv1.RevokeDelegationResponse, error) {
	const rpc = "RevokeDelegation"
	c := api.CallerFrom(ctx)
	id, err := api.ParseDelegationID("id", req.GetId())
	if err != nil {
		return nil, err
	}
	if len(req.GetReason()) > delegation.MaxReasonLength || !utf8.ValidString(req.GetReason()) {
		return nil, status.Errorf(codes.InvalidArgument, "reason: must be valid UTF-8 of at most %d bytes", delegation.MaxReasonLength)
	}
	dl, err := s.store.GetDelegation(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, status.Error(codes.NotFound, "id: no such delegation")
	}
	if err != nil {
		return nil, s.storeError("read delegation", err)
	}
	ev := audit.Event{DelegationID: dl.ID.String(), Agent: dl.Agent.String(), User: dl.User.String()}
	actor := c.String()
	ancestors, err := s.ancestors(ctx, dl)
	if errors.Is(err, store.ErrNotFound) {
		// An ancestor purged meanwhile: the tree is long expired.
		return nil, status.Error(codes.NotFound, "id: no such delegation")
	}
	if err != nil {
		return nil, s.storeError("read ancestors", err)
	}
	allowed := s.access.CanRevoke
	if token := req.GetUserToken(); token != "" {
		// The user's own token says she agrees; the caller must still be
		// one who may act on this delegation for her (authz.Access.CanRevokeAsUser).
		ident, err := s.authenticateUser(ctx, rpc, c, token, ev)
		if err != nil {
			return nil, err
		}
		if ident.User.Issuer() != dl.User.Issuer() || ident.User.Subject() != dl.User.Subject() {
			// Another user's token: answer as for an unknown id, so a valid
			// token cannot probe which ids exist.
			s.deny(ctx, rpc, c, "not_the_user", "", ev)
			return nil, status.Error(codes.NotFound, "id: no such delegation")
		}
		if s.clock().Sub(ident.IssuedAt) > s.freshness {
			s.deny(ctx, rpc, c, "user_token_not_fresh", "", ev)
			return nil, status.Error(codes.Unauthenticated, oidcauth.ErrInvalidToken.Error())
		}
		actor = "user:" + ident.User.String()
		allowed = s.access.CanRevokeAsUser
	}
	if !allowed(c, dl, ancestors) {
		s.deny(ctx, rpc, c, "not_allowed", "", ev)
		if !s.access.CanSee(c, dl) {
			return nil, status.Error(codes.NotFound, "id: no such delegation")
		}
		return nil, status.Error(codes.PermissionDenied, "caller may not revoke this delegation")
	}
	now := s.clock()
	resp := &delegationv1.RevokeDelegationResponse{}
	if dl.EffectiveState(now) == delegation.StateActive {
		reason := req.GetReason()
		ids, _, err := s.store.RevokeDelegation(ctx, store.Revocation{
			ID: dl.ID, At: now, Reason: reason,
			Event: audit.Event{Time: now, Type: audit.TypeRevoked, Actor: actor, DelegationID: dl.ID.String(),
				Agent: dl.Agent.String(), User: dl.User.String(), Detail: map[string]string{"reason": reason}},
		})
		switch {
		case errors.Is(err, store.ErrAlreadyRevoked):
		case err != nil:
			return nil, s.storeError("revoke delegation", err)
		default:
			for _, r := range ids {
				resp.RevokedIds = append(resp.RevokedIds, r.String())
			}
			resp.RevokedCount = uint32(len(ids)) //nolint:gosec // the number of delegations one revocation reached, far below 2^32
			s.metrics.Revoked.Add(float64(len(ids)))
			s.log.WithFields(logrus.Fields{"delegation_id": dl.ID.String(), "actor": actor,
				"revoked_count": len(ids)}).Info("Delegation revoked")
		}
	}
	if dl, err = s.store.GetDelegation(ctx, id); errors.Is(err, store.ErrNotFound) {
		// Purged between the two reads (expired more than a day ago).
		return nil, status.Error(codes.NotFound, "id: no such delegation")
	} else if err != nil {
		return nil, s.storeError("read delegation", err)
	}
	resp.Delegation = apiconv.DelegationToProto(dl, 0, s.clock())
	return resp, nil
}

// ancestors walks up from d to its root; the chain is bounded by
// delegation.MaxDepthLimit.
func (s *Service) ancestors(ctx context.Context, d *delegation.Delegation) ([]*delegation.Delegation, error) {
	var out []*delegation.Delegation
	for cur := d; !cur.Parent.IsZero() && len(out) < delegation.MaxDepthLimit; {
		p, err := s.store.GetDelegation(ctx, cur.Parent)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
		cur = p
	}
	return out, nil
}
