package composer

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/agentid/agentid/pkg/internal/serverdial"
	auditv1 "github.com/agentid/agentid/proto/agentid/audit/v1"
	delegationv1 "github.com/agentid/agentid/proto/agentid/delegation/v1"
	"github.com/hashicorp/go-hclog"
	"github.com/spiffe/spire-plugin-sdk/pluginsdk"
	metricsv1 "github.com/spiffe/spire-plugin-sdk/proto/spire/hostservice/common/metrics/v1"
	credentialcomposerv1 "github.com/spiffe/spire-plugin-sdk/proto/spire/plugin/server/credentialcomposer/v1"
	configv1 "github.com/spiffe/spire-plugin-sdk/proto/spire/service/common/config/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Log field keys, constant so that log queries do not depend on messages.
const (
	logKeyAttempt       = "attempt"
	logKeyAgentID       = "agent_id"
	logKeyAudiences     = "audiences"
	logKeyDelegationID  = "delegation_id"
	logKeyDelegations   = "delegations"
	logKeyError         = "error"
	logKeyExpiresAt     = "expires_at"
	logKeyRecords       = "records"
	logKeyRevision      = "revision"
	logKeySinceRevision = "since_revision"
	logKeySocketPath    = "socket_path"
)

// maxRecvMsgSize lets a snapshot chunk of 500 delegations at the API's size
// limits through (a chain of 16 SPIFFE IDs of 2 KiB alone is 32 KiB).
const maxRecvMsgSize = 64 << 20

// tuning holds the timing of the background work. Tests shorten it.
type tuning struct {
	// minBackoff and maxBackoff bound the wait between watch attempts and
	// between audit retries.
	minBackoff, maxBackoff time.Duration
	// idleTimeout ends a watch stream that delivers nothing (not even a
	// heartbeat) for this long, so that a wedged server is redialed.
	idleTimeout time.Duration
	// sweepInterval and sweepGrace: how often expired delegations are
	// forgotten, and how long after expiry.
	sweepInterval, sweepGrace time.Duration
	// dialTimeout bounds one attempt to connect to agentid-server's socket
	// (gRPC's MinConnectTimeout).
	dialTimeout time.Duration
	// auditTimeout bounds one RecordTokenIssuance call; flushTimeout bounds
	// sending the queue when the plugin stops.
	auditTimeout, flushTimeout time.Duration
	// auditLinger is how long the sender waits for more records after the
	// first of a batch. Each batch is one RPC and one fsync'd commit at
	// agentid-server, so a short wait turns a stream of tokens into a few
	// large batches; the queue bounds what can be pending meanwhile.
	auditLinger time.Duration
	// unknownWait bounds how long a lookup of an id the replica does not
	// hold waits for the watch stream to bring it. agentid-server answers
	// CreateDelegation once its transaction commits and the change reaches
	// the replica a moment later: an agent that fetches its token at once
	// must not be refused for that. The wait is on the replica's own update
	// signal, never on the network.
	unknownWait time.Duration
	// metricsInterval is how often the counters and gauges are sent to
	// SPIRE's metrics host service; metricsTimeout bounds one such flush.
	metricsInterval, metricsTimeout time.Duration
}

var defaultTuning = tuning{
	minBackoff: 100 * time.Millisecond,
	// agentid-server is a local process on a unix socket: an attempt costs
	// next to nothing, and while it is away no delegated token is issued,
	// so the composer retries at least every second.
	maxBackoff:    time.Second,
	idleTimeout:   30 * time.Second,
	sweepInterval: time.Minute,
	sweepGrace:    10 * time.Minute,
	dialTimeout:   5 * time.Second,
	auditTimeout:  5 * time.Second,
	flushTimeout:  2 * time.Second,
	auditLinger:   100 * time.Millisecond,
	unknownWait:   500 * time.Millisecond,
	// Ten seconds is the scrape interval of a typical Prometheus set-up:
	// a shorter one would only add calls to SPIRE.
	metricsInterval: 10 * time.Second,
	metricsTimeout:  5 * time.Second,
}

var (
	_ pluginsdk.NeedsLogger                         = (*Plugin)(nil)
	_ pluginsdk.NeedsHostServices                   = (*Plugin)(nil)
	_ credentialcomposerv1.CredentialComposerServer = (*Plugin)(nil)
	_ configv1.ConfigServer                         = (*Plugin)(nil)
)

// Options are the plugin's settings that do not come from SPIRE's
// configuration. The zero value is what cmd/agentid-composer uses.
type Options struct {
	// Clock returns the current time; nil means time.Now. Expiry and
	// staleness are judged by it, so tests drive them without sleeping.
	Clock func() time.Time
}

// Plugin is the agentid CredentialComposer. For a JWT-SVID whose audience
// holds one delegation marker it adds the delegation's claims; every other
// credential it leaves to SPIRE's defaults. See the package documentation.
//
// Use New; a Plugin answers FailedPrecondition until Configure succeeds.
// Close (called by the plugin SDK on unload) stops its background work.
type Plugin struct {
	credentialcomposerv1.UnsafeCredentialComposerServer
	configv1.UnsafeConfigServer

	now    func() time.Time
	tuning tuning
	claims claimCache

	// configMu serialises Configure and Close; it also guards log,
	// metrics and flusher.
	configMu sync.Mutex
	log      hclog.Logger
	// metrics is SPIRE's metrics host service, nil when SPIRE offers none;
	// flusher reports to it while the plugin is configured.
	metrics metricsv1.MetricsClient
	flusher *flusher
	// counters are counted whether or not metrics is available.
	counters counters
	// state is read without locks on the signing path.
	state atomic.Pointer[state]

	// hooks for tests.
	hooks struct {
		// watchEnded runs after every watch stream ends, with its error.
		watchEnded func(err error)
		// lookupWaiting runs each time a lookup of an unknown id starts
		// waiting for the replica's next update.
		lookupWaiting func()
	}
	// unknownWaiters counts the lookups waiting for an unknown id.
	unknownWaiters atomic.Int32
}

// state is one configuration and the backend serving it.
type state struct {
	config *config
	rt     *backend
}

// backend is the connection to agentid-server and the work behind it: the
// replica and its watcher, the audit sender.
type backend struct {
	socketPath     string
	auditQueueSize int
	conn           *grpc.ClientConn
	replica        *replica
	audit          *auditor
	cancel         context.CancelFunc
	wg             sync.WaitGroup
	// started is when the backend started: the replica age gauge's origin
	// until agentid-server is first heard.
	started time.Time
}

// New returns an unconfigured plugin.
func New(opts Options) *Plugin {
	now := opts.Clock
	if now == nil {
		now = time.Now
	}
	return &Plugin{now: now, tuning: defaultTuning, log: hclog.NewNullLogger()}
}

// SetLogger is called by the plugin framework with a logger wired to SPIRE's
// log. The state of the watch stream and the audit sender is logged there.
func (p *Plugin) SetLogger(log hclog.Logger) {
	p.configMu.Lock()
	p.log = log
	p.configMu.Unlock()
}

// BrokerHostServices is called by the plugin framework at load, after
// SetLogger. It takes SPIRE's metrics host service when there is one;
// without it (an older SPIRE, a test) the plugin works the same and only
// logs that its metrics are off.
func (p *Plugin) BrokerHostServices(broker pluginsdk.ServiceBroker) error {
	client := new(metricsv1.MetricsServiceClient)
	p.configMu.Lock()
	defer p.configMu.Unlock()
	if !broker.BrokerClient(client) {
		p.log.Info("SPIRE offers no metrics host service; agentid_composer metrics are off")
		return nil
	}
	p.metrics = client
	return nil
}

// Configure builds the configuration from the plugin_data HCL and swaps it
// in. The connection to agentid-server is not awaited: an unreachable server
// makes delegated tokens fail (not ready), not the plugin's loading, since
// SPIRE must be able to sign its own credentials without agentid-server. A
// new socket path or queue size starts a fresh replica and sender and stops
// the old ones; other changes apply at once. An invalid configuration
// leaves the previous one in force and answers InvalidArgument.
func (p *Plugin) Configure(_ context.Context, req *configv1.ConfigureRequest) (*configv1.ConfigureResponse, error) {
	c, _, err := buildConfig(req.GetHclConfiguration())
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	p.configMu.Lock()
	defer p.configMu.Unlock()
	old := p.state.Load()
	var rt *backend
	if old != nil && old.rt.socketPath == c.socketPath && old.rt.auditQueueSize == c.auditQueueSize {
		rt = old.rt
	} else if rt, err = p.start(c); err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	p.state.Store(&state{config: c, rt: rt})
	if old != nil && old.rt != rt {
		old.rt.stop()
	}
	if p.metrics != nil && p.flusher == nil {
		p.flusher = newFlusher(p, p.metrics, p.log)
	}
	return &configv1.ConfigureResponse{}, nil
}

// Validate runs the same builder as Configure without applying the result,
// and returns its notes: the error when invalid, and a warning when
// max_staleness is below twice the server's default heartbeat.
func (p *Plugin) Validate(_ context.Context, req *configv1.ValidateRequest) (*configv1.ValidateResponse, error) {
	_, notes, err := buildConfig(req.GetHclConfiguration())
	return &configv1.ValidateResponse{Valid: err == nil, Notes: notes}, nil
}

// Close stops the watch and the audit sender, sending the queued issuance
// records first (for at most two seconds), then sends the counters to
// SPIRE's metrics host service a last time. The plugin SDK calls it when
// SPIRE unloads the plugin; afterwards the plugin is unconfigured.
func (p *Plugin) Close() error {
	p.configMu.Lock()
	defer p.configMu.Unlock()
	if old := p.state.Swap(nil); old != nil {
		old.rt.stop()
	}
	if p.flusher != nil {
		p.flusher.stop()
		p.flusher = nil
	}
	return nil
}

// start dials agentid-server (lazily: no I/O happens here) and starts the
// watcher, the sweeper and the audit sender.
func (p *Plugin) start(c *config) (*backend, error) {
	conn, err := serverdial.Local(c.socketPath,
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxRecvMsgSize)),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff: backoff.Config{
				BaseDelay: p.tuning.minBackoff, Multiplier: 1.6, Jitter: 0.2, MaxDelay: p.tuning.maxBackoff,
			},
			MinConnectTimeout: p.tuning.dialTimeout,
		}),
	)
	if err != nil {
		return nil, fmt.Errorf("composer: %w", err)
	}
	log := p.log.With(logKeySocketPath, c.socketPath)
	ctx, cancel := context.WithCancel(context.Background())
	rt := &backend{
		socketPath:     c.socketPath,
		auditQueueSize: c.auditQueueSize,
		conn:           conn,
		replica:        newReplica(),
		cancel:         cancel,
		started:        p.now(),
	}
	rt.audit = newAuditor(auditv1.NewAuditServiceClient(conn), c.auditQueueSize, log, p.tuning, &p.counters.auditLost)
	w := &watcher{
		client:  delegationv1.NewDelegationServiceClient(conn),
		replica: rt.replica,
		now:     p.now,
		log:     log,
		tuning:  p.tuning,
		ended:   p.hooks.watchEnded,
	}
	rt.wg.Add(2)
	go func() { defer rt.wg.Done(); w.run(ctx) }()
	go func() { defer rt.wg.Done(); w.sweepLoop(ctx) }()
	return rt, nil
}

// stop ends the backend's goroutines and closes its connection.
func (rt *backend) stop() {
	rt.audit.stop()
	rt.cancel()
	rt.wg.Wait()
	_ = rt.conn.Close()
}

func (p *Plugin) getState() (*state, error) {
	st := p.state.Load()
	if st == nil {
		return nil, status.Error(codes.FailedPrecondition, "composer: not configured")
	}
	return st, nil
}

// ComposeServerX509CA leaves the server CA to SPIRE's defaults.
func (p *Plugin) ComposeServerX509CA(context.Context, *credentialcomposerv1.ComposeServerX509CARequest) (*credentialcomposerv1.ComposeServerX509CAResponse, error) {
	// Intentionally not implemented.
	return nil, status.Error(codes.Unimplemented, "not implemented")
}

// ComposeServerX509SVID leaves the server's X509-SVID to SPIRE's defaults.
func (p *Plugin) ComposeServerX509SVID(context.Context, *credentialcomposerv1.ComposeServerX509SVIDRequest) (*credentialcomposerv1.ComposeServerX509SVIDResponse, error) {
	// Intentionally not implemented.
	return nil, status.Error(codes.Unimplemented, "not implemented")
}

// ComposeAgentX509SVID leaves agents' X509-SVIDs to SPIRE's defaults.
func (p *Plugin) ComposeAgentX509SVID(context.Context, *credentialcomposerv1.ComposeAgentX509SVIDRequest) (*credentialcomposerv1.ComposeAgentX509SVIDResponse, error) {
	// Intentionally not implemented.
	return nil, status.Error(codes.Unimplemented, "not implemented")
}

// ComposeWorkloadX509SVID leaves workloads' X509-SVIDs to SPIRE's defaults:
// an agent's X509-SVID is its own identity, never a delegated one.
func (p *Plugin) ComposeWorkloadX509SVID(context.Context, *credentialcomposerv1.ComposeWorkloadX509SVIDRequest) (*credentialcomposerv1.ComposeWorkloadX509SVIDResponse, error) {
	// Intentionally not implemented.
	return nil, status.Error(codes.Unimplemented, "not implemented")
}
