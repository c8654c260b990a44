package server

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/agentid/agentid/pkg/audit"
	"github.com/agentid/agentid/pkg/oidcauth"
	"github.com/agentid/agentid/pkg/policy"
	"github.com/agentid/agentid/pkg/server/config"
	"github.com/agentid/agentid/pkg/store"
	agentv1 "github.com/agentid/agentid/proto/agentid/agent/v1"
	auditv1 "github.com/agentid/agentid/proto/agentid/audit/v1"
	delegationv1 "github.com/agentid/agentid/proto/agentid/delegation/v1"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"
)

// UserAuthenticator verifies a user's OIDC token (pkg/oidcauth).
type UserAuthenticator interface {
	Authenticate(ctx context.Context, rawToken string) (oidcauth.Identity, error)
}

// Decider applies the delegation policy (pkg/policy).
type Decider interface {
	Decide(ctx context.Context, in policy.Input) (policy.Decision, error)
}

// AgentStates reports the SPIRE sync state of declared agents by name (the
// reconciler).
type AgentStates func() map[string]AgentSync

// AgentSync is one agent's SPIRE registration state.
type AgentSync struct {
	State      agentv1.SyncState
	EntryID    string
	LastSynced time.Time
	LastError  string
}

// Defaults of Config.
const (
	DefaultWatchHeartbeat  = 10 * time.Second
	DefaultRevokeFreshness = 5 * time.Minute
	// snapshotChunk is the most delegations one snapshot message carries.
	snapshotChunk = 500
)

// Config holds what the API handlers need. Run builds it from the
// configuration file; tests build it directly.
type Config struct {
	Store  store.Store
	Users  UserAuthenticator
	Policy Decider
	// Agents are the declared agents.
	Agents []config.AgentSpec
	// AgentStates may be nil: every agent then reads as pending.
	AgentStates                     AgentStates
	Admins, Verifiers, AuditReaders []spiffeid.ID
	// UserClients may revoke any delegation of a user with her fresh token
	// (the user page, the CLI over mTLS); see access.canRevokeAsUser.
	UserClients []spiffeid.ID
	// Clock defaults to time.Now.
	Clock func() time.Time
	// Log defaults to a logger that discards.
	Log logrus.FieldLogger
	// Registerer receives the server's metrics; nil: not registered.
	Registerer prometheus.Registerer
	// WatchHeartbeat is how often a quiet watch stream gets a progress message.
	WatchHeartbeat time.Duration
	// RevokeFreshness is how recent (iat) a user's token must be to revoke.
	RevokeFreshness time.Duration
}

// Server implements the three agentid APIs over a Store.
type Server struct {
	store       store.Store
	users       UserAuthenticator
	policy      Decider
	agentsByID  map[spiffeid.ID]*config.AgentSpec
	agents      []config.AgentSpec
	agentStates AgentStates
	access      access
	clock       func() time.Time
	log         logrus.FieldLogger
	metrics     *metrics
	heartbeat   time.Duration
	freshness   time.Duration
	closing     chan struct{}
	closeOnce   sync.Once
	denials     denyLimiter
}

// New checks the Config and returns a Server.
func New(c Config) (*Server, error) {
	if c.Store == nil || c.Users == nil || c.Policy == nil {
		return nil, errors.New("server: store, user authenticator and policy are required")
	}
	s := &Server{
		store:       c.Store,
		users:       c.Users,
		policy:      c.Policy,
		agents:      c.Agents,
		agentsByID:  make(map[spiffeid.ID]*config.AgentSpec, len(c.Agents)),
		agentStates: c.AgentStates,
		access:      newAccess(c.Admins, c.Verifiers, c.AuditReaders, c.UserClients),
		clock:       c.Clock,
		log:         c.Log,
		heartbeat:   c.WatchHeartbeat,
		freshness:   c.RevokeFreshness,
		closing:     make(chan struct{}),
	}
	for i := range s.agents {
		s.agentsByID[s.agents[i].SPIFFEID] = &s.agents[i]
	}
	if s.clock == nil {
		s.clock = time.Now
	}
	if s.log == nil {
		l := logrus.New()
		l.Out = discard{}
		s.log = l
	}
	if s.heartbeat <= 0 {
		s.heartbeat = DefaultWatchHeartbeat
	}
	if s.freshness <= 0 {
		s.freshness = DefaultRevokeFreshness
	}
	m, err := newMetrics(c.Registerer)
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	s.metrics = m
	return s, nil
}

// Register adds the three services to a gRPC server.
func (s *Server) Register(g grpc.ServiceRegistrar) {
	delegationv1.RegisterDelegationServiceServer(g, &delegationService{s: s})
	agentv1.RegisterAgentServiceServer(g, &agentService{s: s})
	auditv1.RegisterAuditServiceServer(g, &auditService{s: s})
}

// Close ends every watch stream with UNAVAILABLE, so a graceful stop of
// the gRPC server does not wait for streams that never end by themselves.
// Clients resume from their last revision.
func (s *Server) Close() {
	s.closeOnce.Do(func() { close(s.closing) })
}

// deny records a refusal as a denied audit event, counts it, and logs it.
// reason is a short fixed code (a metric label); detail may say more. Never
// pass a user token in either. Events are rate limited per caller (see
// denyLimiter).
func (s *Server) deny(ctx context.Context, rpc string, c Caller, reason, detail string, ev audit.Event) {
	s.metrics.denied.WithLabelValues(rpc, reason).Inc()
	s.log.WithFields(logrus.Fields{"rpc": rpc, "caller": c.String(), "reason": reason, "detail": detail,
		"delegation_id": ev.DelegationID, "agent_id": ev.Agent}).Info("Request denied")
	ev.Time = s.clock()
	ok, suppressed := s.denials.allow(c.String(), ev.Time)
	if !ok {
		s.metrics.deniedSuppressed.Inc()
		return
	}
	ev.Type = audit.TypeDenied
	ev.Actor = c.String()
	ev.Detail = map[string]string{"rpc": rpc, "reason": reason}
	if detail != "" {
		ev.Detail["detail"] = truncateUTF8(detail, audit.MaxDetailValueLength)
	}
	if suppressed > 0 {
		ev.Detail["suppressed"] = strconv.Itoa(suppressed)
	}
	// The caller must not be able to erase its own denial by cancelling the
	// request, so the write outlives the request's context.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), denyEventWriteTimeout)
	defer cancel()
	if err := s.store.AppendEvents(wctx, ev); err != nil {
		s.log.WithError(err).Error("Failed to record denied audit event")
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

func truncateUTF8(s string, max int) string {
	if len(s) <= max {
		return s
	}
	for max > 0 && s[max]&0xc0 == 0x80 {
		max--
	}
	return s[:max]
}
