package server

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/agentid/agentid/pkg/audit"
	"github.com/agentid/agentid/pkg/internal/listener"
	"github.com/agentid/agentid/pkg/internal/task"
	"github.com/agentid/agentid/pkg/oidcauth"
	"github.com/agentid/agentid/pkg/policy"
	"github.com/agentid/agentid/pkg/reconciler"
	"github.com/agentid/agentid/pkg/server/api"
	"github.com/agentid/agentid/pkg/server/config"
	"github.com/agentid/agentid/pkg/spireapi"
	"github.com/agentid/agentid/pkg/spireapi/x509source"
	"github.com/agentid/agentid/pkg/store"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/sirupsen/logrus"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
	"google.golang.org/grpc"
)

// Timeouts of start-up and shutdown.
const (
	spireDialTimeout = 30 * time.Second
	shutdownTimeout  = 5 * time.Second
)

// identity is the server's own X509-SVID and trust bundle.
type identity interface {
	x509svid.Source
	x509bundle.Source
}

// Run builds agentid-server from its configuration and serves until ctx
// ends. Every dependency is checked before the first request is accepted: a
// store it cannot open, a policy that does not compile, a SPIRE server it
// cannot reach or an identity it cannot get stop start-up with an error that
// says which.
func Run(ctx context.Context, cfg *config.Config, log logrus.FieldLogger) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for _, w := range cfg.Warnings {
		// Repeated at every start, so that nobody runs this way unaware.
		log.WithField("warning", w).Warn("DANGEROUS: agent identity can be taken by copying its manifest")
	}

	st, err := openStore(ctx, cfg)
	if err != nil {
		return fmt.Errorf("failed to open store: %w", err)
	}
	defer st.Close()

	issuers := make([]oidcauth.IssuerConfig, len(cfg.Issuers))
	for i, is := range cfg.Issuers {
		issuers[i] = oidcauth.IssuerConfig{URL: is.URL, Audiences: is.Audiences, GroupsClaim: is.GroupsClaim, RequireVerifiedEmail: is.RequireVerifiedEmail}
	}
	users, err := oidcauth.New(oidcauth.Config{Issuers: issuers})
	if err != nil {
		return err
	}
	// Warm the issuers' keys in the background: an IdP that is still coming
	// up (pods are not ordered) only fails requests until it answers.
	go func() {
		pctx, pcancel := context.WithTimeout(ctx, 30*time.Second)
		defer pcancel()
		if err := users.Prefetch(pctx); err != nil {
			log.WithError(err).Warn("Identity provider not reachable yet; user tokens fail until it is")
		}
	}()
	rules := make([]policy.Rule, len(cfg.Rules))
	for i, r := range cfg.Rules {
		rules[i] = policy.Rule{Name: r.Name, When: r.When, Scopes: r.Scopes, MaxTTL: r.MaxTTL, MaxDepth: r.MaxDepth, Callers: r.Callers}
	}
	pol, err := policy.Compile(rules)
	if err != nil {
		return err
	}

	dialCtx, dialCancel := context.WithTimeout(ctx, spireDialTimeout)
	spire, err := spireapi.Dial(dialCtx, cfg.AdminSocket)
	dialCancel()
	if err != nil {
		return fmt.Errorf("failed to reach SPIRE server at %s: %w", cfg.AdminSocket, err)
	}
	defer spire.Close()

	var id identity
	var runIdentity func(context.Context) error
	if cfg.WorkloadAPISocket != "" {
		src, err := workloadapi.NewX509Source(ctx, workloadapi.WithClientOptions(workloadapi.WithAddr("unix://"+cfg.WorkloadAPISocket)))
		if err != nil {
			return fmt.Errorf("failed to get X509-SVID from the Workload API: %w", err)
		}
		defer src.Close()
		id = src
	} else {
		src, err := x509source.New(ctx, x509source.Config{Minter: spire, ID: cfg.ServerID, Log: log})
		if err != nil {
			return err
		}
		id, runIdentity = src, src.Run
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	health, err := newStoreHealth(st, log.WithField("subsystem", "store"), reg)
	if err != nil {
		return err
	}

	agents := newRegistry(st, log)
	audited := agentSyncAuditor(ctx, st, log)
	rec, err := reconciler.New(reconciler.Config{
		Client: spire, Prefix: cfg.EntryPrefix, SelectorType: cfg.SelectorType, Interval: cfg.ReconcileInterval,
		Log: log.WithField("subsystem", "reconciler"), Registerer: reg,
		OnSync: func(name string, s reconciler.SyncState) {
			agents.onSync(ctx, name, s)
			audited(name, s)
		},
	})
	if err != nil {
		return err
	}
	// The registry first: the reconciler's states update its records.
	if err := agents.declare(ctx, cfg.Agents); err != nil {
		return err
	}
	if err := rec.SetAgents(cfg.Agents); err != nil {
		return err
	}

	srv, err := New(Config{
		Store: st, Users: users, Policy: pol, Agents: cfg.Agents,
		Admins: cfg.Admins, Verifiers: cfg.Verifiers, AuditReaders: cfg.AuditReaders, UserClients: cfg.UserClients,
		Log: log, Registerer: reg,
	})
	if err != nil {
		return err
	}

	// Agents removed from the declaration lose their authority before the
	// first request is served.
	if n, err := srv.RevokeUndeclared(ctx); err != nil {
		return fmt.Errorf("failed to revoke delegations of undeclared agents: %w", err)
	} else if n > 0 {
		log.WithField("revoked", n).Warn("Revoked delegations of agents no longer declared")
	}

	purge, err := newPurger(srv, reg)
	if err != nil {
		return err
	}

	var oauth *oauthListener
	if cfg.OAuth != nil {
		if oauth, err = newOAuthListener(ctx, cfg.OAuth, cfg.TrustDomain, cfg.Agents, st, spire, id, log); err != nil {
			return fmt.Errorf("oauth: %w", err)
		}
		defer oauth.listener.Close()
	}

	page, err := newUserPage(cfg.UserPage, st, users, log)
	if err != nil {
		return fmt.Errorf("user page: %w", err)
	}
	if page != nil {
		defer page.listener.Close()
	}

	// The local socket is group-accessible (0660): the composer plugin runs
	// in spire-server's container, which shares the group in the chart.
	localLis, err := listener.Unix(cfg.LocalSocket, 0o660)
	if err != nil {
		return err
	}
	servers := []*grpc.Server{srv.LocalServer()}
	listeners := []net.Listener{localLis}
	if cfg.GRPCAddr != "" {
		l, err := net.Listen("tcp", cfg.GRPCAddr)
		if err != nil {
			localLis.Close()
			return fmt.Errorf("failed to listen on %s: %w", cfg.GRPCAddr, err)
		}
		servers = append(servers, srv.MTLSServer(id, id, cfg.TrustDomain))
		listeners = append(listeners, l)
	}
	tasks := []task.Task{
		{Name: "reconciler", Run: rec.Run},
		{Name: "purge", Run: purge.run},
		{Name: "store health", Run: health.run},
	}
	if runIdentity != nil {
		tasks = append(tasks, task.Task{Name: "identity", Run: runIdentity})
	}
	for i := range servers {
		g, l := servers[i], listeners[i]
		tasks = append(tasks, task.Serve("grpc "+l.Addr().String(), func() error { return g.Serve(l) }, func() {
			// The watch streams never end by themselves: closing them
			// first lets the graceful stop finish.
			srv.Close()
			gracefulStop(g)
		}))
	}
	if cfg.HTTPAddr != "" {
		httpLis, err := net.Listen("tcp", cfg.HTTPAddr)
		if err != nil {
			for _, l := range listeners {
				l.Close()
			}
			return fmt.Errorf("failed to listen on %s: %w", cfg.HTTPAddr, err)
		}
		httpSrv := &http.Server{Handler: healthMux(health, id, reg), ReadHeaderTimeout: 5 * time.Second}
		tasks = append(tasks, task.Serve("http", func() error { return httpSrv.Serve(httpLis) }, func() {
			sctx, scancel := context.WithTimeout(context.Background(), shutdownTimeout)
			defer scancel()
			_ = httpSrv.Shutdown(sctx) // its only error is the deadline, after which the listener is closed anyway
		}))
	}
	oauthAddr := ""
	if oauth != nil {
		oauthAddr = oauth.listener.Addr().String()
		for name, run := range oauth.tasks {
			tasks = append(tasks, task.Task{Name: name, Run: run})
		}
		tasks = append(tasks, task.Serve("oauth "+oauthAddr, oauth.serve, func() {
			sctx, scancel := context.WithTimeout(context.Background(), shutdownTimeout)
			defer scancel()
			_ = oauth.server.Shutdown(sctx) // as above
		}))
	}
	pageAddr := ""
	if page != nil {
		pageAddr = page.listener.Addr().String()
		tasks = append(tasks, task.Serve("user page "+pageAddr, page.serve, func() {
			sctx, scancel := context.WithTimeout(context.Background(), shutdownTimeout)
			defer scancel()
			_ = page.server.Shutdown(sctx) // as above
		}))
	}
	log.WithFields(logrus.Fields{"local_socket": cfg.LocalSocket, "grpc": cfg.GRPCAddr, "http": cfg.HTTPAddr, "oauth": oauthAddr, "user_page": pageAddr,
		"store": storeType(cfg), "agents": len(cfg.Agents), "rules": len(cfg.Rules)}).Info("agentid-server started")
	err = task.Run(ctx, tasks...)
	if err != nil {
		log.WithError(err).Error("Component failed; shutting down")
	}
	log.Info("agentid-server stopped")
	return err
}

// gracefulStop stops g, waiting for the calls in flight for at most
// shutdownTimeout before cutting them.
func gracefulStop(g *grpc.Server) {
	stopped := make(chan struct{})
	go func() {
		g.GracefulStop()
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-time.After(shutdownTimeout):
		g.Stop()
	}
}

// agentSyncAuditor records an agent-synced audit event when an agent's sync
// state changes (not on every periodic pass, which would flood the log).
func agentSyncAuditor(ctx context.Context, st store.Store, log logrus.FieldLogger) func(string, reconciler.SyncState) {
	last := map[string]reconciler.State{}
	return func(name string, s reconciler.SyncState) {
		if prev, ok := last[name]; (ok && prev == s.State) || s.State == reconciler.StatePending {
			return
		}
		last[name] = s.State
		detail := map[string]string{"agent": name, "state": s.State.String(), "entry_id": s.EntryID}
		if s.LastError != "" {
			detail["error"] = api.TruncateUTF8(s.LastError, audit.MaxDetailValueLength)
		}
		if err := st.AppendEvents(ctx, audit.Event{Time: time.Now(), Type: audit.TypeAgentSynced, Actor: "agentid-server", Detail: detail}); err != nil {
			log.WithError(err).Warn("Failed to record agent sync audit event")
		}
	}
}

// healthMux serves /healthz (the process runs), /readyz (the store answers
// and the server holds an unexpired X509-SVID) and /metrics.
func healthMux(health *storeHealth, id identity, reg *prometheus.Registry) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		if err := health.probe(r.Context()); err != nil {
			http.Error(w, "store not ready", http.StatusServiceUnavailable)
			return
		}
		svid, err := id.GetX509SVID()
		if err != nil || time.Now().After(svid.Certificates[0].NotAfter) {
			http.Error(w, "no valid X509-SVID", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok\n"))
	})
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	return mux
}
