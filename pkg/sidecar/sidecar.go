package sidecar

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/agentid/agentid/pkg/agentclient"
	"github.com/agentid/agentid/pkg/internal/task"
)

// Sidecar is a running agentid-sidecar: the local API and, when routes are
// configured, the egress proxy, both on the agent's identity.
type Sidecar struct {
	config Config
	log    *slog.Logger
	agent  *agentclient.Agent
	server *agentclient.ServerClient // nil when no server is configured
	access *agentclient.AccessTokens // nil when no OAuth issuer is configured
	// metrics are always counted; they are served only with MetricsListen.
	metrics *metrics

	api, proxy, metricsSrv *http.Server
	apiL, proxyL, metricsL net.Listener
	tasks                  []task.Task
	stop                   context.CancelFunc // ends the tasks
	served                 chan error         // the tasks' end: task.Run's answer
	closeOnce              sync.Once
	closeErr               error
	proxyTransport         []*agentclient.Transport
}

// Start checks the configuration (applying the defaults ParseConfig
// applies to zero fields, so a Config built in code behaves like a file),
// connects to the Workload API (waiting,
// within ctx, for the agent's X509-SVID), binds the listeners and serves in
// the background until Close.
func Start(ctx context.Context, config Config) (*Sidecar, error) {
	// Refuse a bad bind before touching anything else.
	if config.Listen.IsZero() {
		return nil, fmt.Errorf("%w: listen: not configured", ErrNotLoopback)
	}
	if len(config.Routes) > 0 && config.ProxyListen.IsZero() {
		return nil, fmt.Errorf("%w: routes without proxy_listen", ErrInvalidConfig)
	}
	// A Config built in code gets the file's defaults and checks.
	if err := config.check(); err != nil {
		return nil, err
	}
	if config.Clock == nil {
		config.Clock = time.Now
	}
	log := config.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	agent, err := agentclient.New(ctx, agentclient.Config{WorkloadAPIAddr: config.WorkloadAPI, ID: config.SPIFFEID, Clock: config.Clock})
	if err != nil {
		return nil, err
	}
	s := &Sidecar{config: config, log: log, agent: agent}
	fail := func(err error) (*Sidecar, error) {
		_ = s.shutdown() // the start-up failure is the error to report
		return nil, err
	}
	if s.metrics, err = newMetrics(s); err != nil {
		return fail(err)
	}
	if config.Server.Address != "" {
		if s.server, err = agent.DialServer(config.Server.Address, config.Server.SPIFFEID); err != nil {
			return fail(err)
		}
	}
	if config.OAuth.Issuer != "" {
		// Unbound tokens: the agent process presents them on connections
		// of its own, which cannot carry the sidecar's X509-SVID, so a
		// token bound to it would be refused by every resource that checks
		// cnf (pkg/mcpauth does).
		client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{Proxy: http.ProxyFromEnvironment,
			TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: config.OAuth.RootCAs}}}
		if s.access, err = agent.AccessTokens(config.OAuth.Issuer, client); err != nil {
			return fail(err)
		}
	}
	apiHandler := s.apiHandler()
	var proxyHandler http.Handler
	if !config.ProxyListen.IsZero() {
		if proxyHandler, err = s.proxyHandler(); err != nil {
			return fail(err)
		}
	}
	if s.apiL, err = config.Listen.listen(config.SocketMode); err != nil {
		return fail(err)
	}
	s.api = newServer(apiHandler, log)
	s.serve(s.api, s.apiL)
	if proxyHandler != nil {
		if s.proxyL, err = config.ProxyListen.listen(config.SocketMode); err != nil {
			return fail(err)
		}
		s.proxy = newServer(proxyHandler, log)
		s.serve(s.proxy, s.proxyL)
	}
	if config.MetricsListen != "" {
		if s.metricsL, err = net.Listen("tcp", config.MetricsListen); err != nil {
			return fail(fmt.Errorf("sidecar: metrics_listen: failed to listen: %w", err))
		}
		s.metricsSrv = newServer(s.metrics.handler(s), log)
		s.serve(s.metricsSrv, s.metricsL)
	}
	// The servers outlive Start's ctx (it bounds start-up only): Close or
	// a failing server ends them.
	tctx, stop := context.WithCancel(context.Background())
	s.stop, s.served = stop, make(chan error, 1)
	go func() { s.served <- task.Run(tctx, s.tasks...) }()
	log.Info("Sidecar started", "spiffe_id", agent.ID().String(), "listen", s.apiL.Addr().String(),
		"proxy_listen", addrString(s.proxyL), "metrics_listen", addrString(s.metricsL), "routes", len(config.Routes))
	return s, nil
}

// Run starts the sidecar and serves until ctx ends or a listener fails.
func Run(ctx context.Context, config Config) error {
	s, err := Start(ctx, config)
	if err != nil {
		return err
	}
	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-s.served:
		s.served <- serveErr // for Close
	}
	return errors.Join(serveErr, s.Close())
}

func newServer(h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
}

// serve adds a task serving srv on l until Close, which shuts it down
// (waiting for the requests in flight, at most shutdownTimeout).
func (s *Sidecar) serve(srv *http.Server, l net.Listener) {
	s.tasks = append(s.tasks, task.Serve("sidecar: serve "+l.Addr().String(), func() error { return srv.Serve(l) }, func() {
		ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		defer cancel()
		_ = srv.Shutdown(ctx) // its only error is ctx's end, after which the listener is closed anyway
	}))
}

// shutdownTimeout bounds the wait for requests in flight on Close.
const shutdownTimeout = 5 * time.Second

func addrString(l net.Listener) string {
	if l == nil {
		return ""
	}
	return l.Addr().String()
}

// APIAddr is the API listener's address.
func (s *Sidecar) APIAddr() net.Addr { return s.apiL.Addr() }

// ProxyAddr is the egress proxy's address, nil without a proxy.
func (s *Sidecar) ProxyAddr() net.Addr {
	if s.proxyL == nil {
		return nil
	}
	return s.proxyL.Addr()
}

// MetricsAddr is the metrics listener's address, nil without one.
func (s *Sidecar) MetricsAddr() net.Addr {
	if s.metricsL == nil {
		return nil
	}
	return s.metricsL.Addr()
}

// Agent is the sidecar's agent identity.
func (s *Sidecar) Agent() *agentclient.Agent { return s.agent }

// Close stops the listeners, waits up to five seconds for requests in
// flight, and releases the Workload API and server connections.
func (s *Sidecar) Close() error {
	s.closeOnce.Do(func() { s.closeErr = s.shutdown() })
	return s.closeErr
}

// shutdown ends the servers (when they were started) and releases the
// rest. A server that had failed was reported by Run already.
func (s *Sidecar) shutdown() error {
	var errs []error
	if s.stop != nil {
		s.stop()
		<-s.served //nolint:errcheck // a server that failed was reported by Run already
	}
	for _, l := range []net.Listener{s.apiL, s.proxyL, s.metricsL} {
		if l != nil {
			l.Close() // unix sockets: removes the file; a no-op once served
		}
	}
	for _, t := range s.proxyTransport {
		t.CloseIdleConnections()
	}
	if s.server != nil {
		errs = append(errs, s.server.Close())
	}
	errs = append(errs, s.agent.Close())
	return errors.Join(errs...)
}
