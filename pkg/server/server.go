package server

import (
	"errors"
	"fmt"
	"time"

	"github.com/agentid/agentid/pkg/agent"
	"github.com/agentid/agentid/pkg/server/api"
	agentapi "github.com/agentid/agentid/pkg/server/api/agent/v1"
	auditapi "github.com/agentid/agentid/pkg/server/api/audit/v1"
	delegationapi "github.com/agentid/agentid/pkg/server/api/delegation/v1"
	"github.com/agentid/agentid/pkg/server/authz"
	"github.com/agentid/agentid/pkg/store"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"
)

// Defaults of Config, as the delegation service has them.
const (
	DefaultWatchHeartbeat  = delegationapi.DefaultWatchHeartbeat
	DefaultRevokeFreshness = delegationapi.DefaultRevokeFreshness
)

// Config holds what the three services need. Run builds it from the
// configuration; tests build it directly.
type Config struct {
	Store  store.Store
	Users  delegationapi.UserAuthenticator
	Policy delegationapi.Decider
	// Agents are the declared agents. DeclareAgents writes them into the
	// store's agent registry, which AgentService reads.
	Agents                          []agent.Agent
	Admins, Verifiers, AuditReaders []spiffeid.ID
	// UserClients may revoke any delegation of a user with her fresh token
	// (the user page, the CLI over mTLS); see authz.Access.CanRevokeAsUser.
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

// Server is the three agentid APIs (pkg/server/api/.../v1) over one store,
// with one access policy, one refusal recorder and one set of metrics.
type Server struct {
	store       store.Store
	agents      *agent.Set
	clock       func() time.Time
	log         logrus.FieldLogger
	metrics     *api.Metrics
	delegations *delegationapi.Service
	agentSvc    *agentapi.Service
	audit       *auditapi.Service
}

// New checks the Config and returns a Server.
func New(c Config) (*Server, error) {
	if c.Store == nil || c.Users == nil || c.Policy == nil {
		return nil, errors.New("server: store, user authenticator and policy are required")
	}
	agents, err := agent.NewSet(c.Agents)
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	m, err := api.NewMetrics(c.Registerer)
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	s := &Server{store: c.Store, agents: agents, clock: api.ClockOrNow(c.Clock), log: api.LogOrDiscard(c.Log), metrics: m}
	access := authz.New(authz.Config{Admins: c.Admins, Verifiers: c.Verifiers, AuditReaders: c.AuditReaders, UserClients: c.UserClients})
	denier := api.NewDenier(api.DenierConfig{Store: c.Store, Metrics: m, Log: s.log, Clock: s.clock})
	s.delegations, err = delegationapi.New(delegationapi.Config{
		Store: c.Store, Users: c.Users, Policy: c.Policy, Agents: agents, Access: access, Denier: denier, Metrics: m,
		Clock: s.clock, Log: s.log, WatchHeartbeat: c.WatchHeartbeat, RevokeFreshness: c.RevokeFreshness,
	})
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	s.agentSvc = agentapi.New(agentapi.Config{Store: c.Store, Access: access, Metrics: m, Log: s.log})
	s.audit = auditapi.New(auditapi.Config{Store: c.Store, Access: access, Denier: denier, Metrics: m, Clock: s.clock, Log: s.log})
	return s, nil
}

// Register adds the three services to a gRPC server.
func (s *Server) Register(g grpc.ServiceRegistrar) {
	delegationapi.RegisterService(g, s.delegations)
	agentapi.RegisterService(g, s.agentSvc)
	auditapi.RegisterService(g, s.audit)
}

// Close ends every watch stream with UNAVAILABLE, so a graceful stop of
// the gRPC server does not wait for streams that never end by themselves.
// Clients resume from their last revision.
func (s *Server) Close() { s.delegations.Close() }
