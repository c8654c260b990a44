package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/agentid/agentid/pkg/verify"
	"github.com/agentid/agentid/pkg/verify/extauthz"
	"github.com/agentid/agentid/pkg/verify/revocation"
	delegationv1 "github.com/agentid/agentid/proto/agentid/delegation/v1"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"github.com/spiffe/go-spiffe/v2/spiffegrpc/grpccredentials"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// run serves until ctx ends. It refuses to start on a bad rule, an
// unreadable bundle or an unreachable Workload API.
func run(ctx context.Context, cfg *config, log *slog.Logger) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	vcfg := cfg.verifyConfig()
	var x509Source *workloadapi.X509Source
	if cfg.WorkloadAPISocket != "" {
		clientOpt := workloadapi.WithClientOptions(workloadapi.WithAddr(cfg.WorkloadAPISocket))
		jwtSource, err := workloadapi.NewJWTSource(ctx, clientOpt)
		if err != nil {
			return fmt.Errorf("failed to get JWT bundles from the Workload API: %w", err)
		}
		defer jwtSource.Close()
		vcfg.Bundles = jwtSource
		if !cfg.Revocation.Disabled || cfg.TLS.enabled() {
			if x509Source, err = workloadapi.NewX509Source(ctx, clientOpt); err != nil {
				return fmt.Errorf("failed to get an X509-SVID from the Workload API: %w", err)
			}
			defer x509Source.Close()
		}
	}
	if len(cfg.JWTBundles) > 0 {
		set := jwtbundle.NewSet()
		for td, path := range cfg.JWTBundles {
			b, err := jwtbundle.Load(spiffeid.RequireTrustDomainFromString(td), path)
			if err != nil {
				return fmt.Errorf("failed to load the JWT bundle of %s: %w", td, err)
			}
			set.Add(b)
		}
		vcfg.Bundles = set
	}

	healthSrv := health.NewServer()
	healthSrv.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	ready := make(chan struct{})
	if cfg.Revocation.Disabled {
		log.Warn("Revocation checking disabled: revoked delegations are accepted until they expire")
		close(ready)
	} else {
		conn, err := grpc.NewClient(cfg.Revocation.Address, grpc.WithTransportCredentials(
			grpccredentials.MTLSClientCredentials(x509Source, x509Source, tlsconfig.AuthorizeID(cfg.Revocation.serverID))))
		if err != nil {
			return fmt.Errorf("failed to set up the agentid-server connection: %w", err)
		}
		defer conn.Close()
		policy := revocation.FailClosed
		if cfg.Revocation.FailOpen {
			policy = revocation.FailOpen
		}
		w, err := revocation.New(revocation.Config{
			Client:       delegationv1.NewDelegationServiceClient(conn),
			MaxStaleness: cfg.Revocation.MaxStaleness,
			OnStale:      policy,
			Logger:       log.With("component", "revocation"),
		})
		if err != nil {
			return err
		}
		vcfg.Revocation = w
		go w.Run(ctx) //nolint:errcheck // Run returns only ctx's error, at shutdown
		go func() {
			if w.Ready(ctx) == nil {
				log.Info("Revocation snapshot received", "revision", w.Revision())
				close(ready)
			}
		}()
	}

	v, err := verify.New(vcfg)
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	srv, err := extauthz.New(extauthz.Config{
		Verifier: v, Rules: cfg.rules(), Registerer: reg,
		OnDecision: func(req *authv3.CheckRequest, rule string, err error) {
			if err != nil {
				log.Debug("Denied", "path", req.GetAttributes().GetRequest().GetHttp().GetPath(),
					"peer", req.GetAttributes().GetSource().GetPrincipal(), "rule", rule, "reason", err)
			}
		},
	})
	if err != nil {
		return err
	}

	var opts []grpc.ServerOption
	if cfg.TLS.enabled() {
		opts = append(opts, grpc.Creds(credentials.NewTLS(
			verify.ServerTLSConfig(x509Source, x509Source, tlsconfig.AdaptMatcher(cfg.TLS.authorize)))))
	} else if !plaintextOK(cfg.Listen) {
		log.Warn("ext_authz listener is plaintext on a network address: CheckRequests carry users' tokens; set tls or listen on a unix socket or loopback",
			"address", cfg.Listen)
	}
	gs := grpc.NewServer(opts...)
	srv.Register(gs)
	healthpb.RegisterHealthServer(gs, healthSrv)
	ln, err := listen(cfg.Listen)
	if err != nil {
		return err
	}
	errs := make(chan error, 2)
	go func() { errs <- gs.Serve(ln) }()
	defer gs.GracefulStop()

	if cfg.AdminListen != "" {
		adminLn, err := listen(cfg.AdminListen)
		if err != nil {
			return err
		}
		mux := http.NewServeMux()
		mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok\n")) })
		mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
			select {
			case <-ready:
				w.Write([]byte("ok\n"))
			default:
				http.Error(w, "waiting for the revocation snapshot", http.StatusServiceUnavailable)
			}
		})
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		admin := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go func() { errs <- admin.Serve(adminLn) }()
		defer admin.Close()
	}

	go func() {
		select {
		case <-ready:
			healthSrv.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
		case <-ctx.Done():
		}
	}()
	log.Info("Serving ext_authz", "address", cfg.Listen, "mtls", cfg.TLS.enabled(), "admin", cfg.AdminListen, "rules", len(cfg.Rules))
	select {
	case <-ctx.Done():
		healthSrv.Shutdown()
		return nil
	case err := <-errs:
		return err
	}
}

// plaintextOK reports whether a plaintext listener at addr is reachable
// only from the same host: a unix socket or a loopback address.
func plaintextOK(addr string) bool {
	if strings.HasPrefix(addr, "unix://") {
		return true
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// listen opens "unix:///path" (replacing a stale socket) or "host:port".
func listen(addr string) (net.Listener, error) {
	if path, ok := strings.CutPrefix(addr, "unix://"); ok {
		if fi, err := os.Lstat(path); err == nil && fi.Mode()&os.ModeSocket != 0 {
			if err := os.Remove(path); err != nil {
				return nil, fmt.Errorf("failed to remove stale socket: %w", err)
			}
		} else if err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("failed to check socket path: %w", err)
		}
		return net.Listen("unix", path)
	}
	return net.Listen("tcp", addr)
}
