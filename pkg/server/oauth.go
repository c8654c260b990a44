package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/agentid/agentid/pkg/agent"
	"github.com/agentid/agentid/pkg/authserver"
	"github.com/agentid/agentid/pkg/authserver/keyring"
	"github.com/agentid/agentid/pkg/server/config"
)

// jwtBundleRefresh is how often the trust domain's JWT bundle is re-read
// from SPIRE. SPIRE publishes a new JWT authority in the bundle well before
// it signs with it (its prepared key), so a minute never misses one.
const jwtBundleRefresh = 30 * time.Second

// oauthListener is the authorization server's HTTPS listener and the tasks
// that keep it current.
type oauthListener struct {
	server   *http.Server
	listener net.Listener
	tasks    map[string]func(context.Context) error
}

// jwtBundleFetcher is what the OAuth listener needs of SPIRE.
type jwtBundleFetcher interface {
	GetJWTBundle(ctx context.Context, td spiffeid.TrustDomain) (*jwtbundle.Bundle, error)
}

// newOAuthListener builds the authorization server (pkg/authserver) from
// cfg: its keyring in the store, the trust domain's JWT bundle from SPIRE
// (assertions) and the server's X.509 bundle (agents' client certificates),
// and listens. Every failure stops start-up.
func newOAuthListener(ctx context.Context, cfg *config.OAuth, td spiffeid.TrustDomain, agents []agent.Agent, st serverStore,
	spire jwtBundleFetcher, x509Bundles x509bundle.Source, log logrus.FieldLogger) (*oauthListener, error) {
	log = log.WithField("subsystem", "oauth")
	// Token exchange sub-delegates under the same declaration as
	// CreateSubDelegation: sub-agents and scope ceilings.
	declared, err := agent.NewSet(agents)
	if err != nil {
		return nil, err
	}
	keys, err := keyring.New(keyring.Config{
		Store: st, RotationPeriod: cfg.RotationPeriod, PublishAhead: cfg.PublishAhead,
		Retain: max(keyring.DefaultRetain, 2*cfg.MaxTokenTTL),
		OnError: func(err error) {
			log.WithError(err).Error("Failed to refresh the OAuth signing keys; signing with the ones loaded")
		},
	})
	if err != nil {
		return nil, err
	}
	if err := keys.Refresh(ctx); err != nil {
		return nil, err
	}
	bundles := &refreshingJWTBundle{td: td, fetch: spire}
	if err := bundles.refresh(ctx); err != nil {
		return nil, fmt.Errorf("failed to get the JWT bundle of %s: %w", td, err)
	}
	resources := make([]authserver.Resource, len(cfg.Resources))
	for i, r := range cfg.Resources {
		resources[i] = authserver.Resource{URI: r.URI, Scopes: r.Scopes, TokenTTL: r.TokenTTL}
		if r.IntrospectionSecretFile != "" {
			b, err := os.ReadFile(r.IntrospectionSecretFile)
			if err != nil {
				return nil, fmt.Errorf("oauth.resources[%d]: failed to read the introspection secret: %w", i, err)
			}
			if resources[i].IntrospectionSecret = strings.TrimSpace(string(b)); len(resources[i].IntrospectionSecret) < 16 {
				return nil, fmt.Errorf("oauth.resources[%d]: the introspection secret is shorter than 16 bytes", i)
			}
		}
	}
	as, err := authserver.New(authserver.Config{
		Issuer: cfg.Issuer, Resources: resources, Keys: keys, Store: st,
		Bundles: bundles, X509Bundles: x509Bundles, TrustDomains: []spiffeid.TrustDomain{td}, Agents: declared,
		MaxTokenTTL: cfg.MaxTokenTTL, Log: log,
	})
	if err != nil {
		return nil, err
	}
	srv := &http.Server{
		Handler:           as.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
	}
	if cfg.CertFile != "" {
		certs := &certFiles{certFile: cfg.CertFile, keyFile: cfg.KeyFile}
		if _, err := certs.get(); err != nil {
			return nil, err
		}
		srv.TLSConfig = &tls.Config{
			MinVersion:     tls.VersionTLS12,
			GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return certs.get() },
			// Requested, not required: resource servers fetching metadata
			// have none; agents present their X509-SVID, which the handler
			// verifies against the trust domain's bundle.
			ClientAuth: tls.RequestClientCert,
		}
	} else if cfg.DangerouslyServePlaintext {
		log.WithField("listen", cfg.Addr).Warn("DANGEROUS: the OAuth listener serves plain HTTP (oauth.dangerously_serve_plaintext)")
	}
	l, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("failed to listen on %s: %w", cfg.Addr, err)
	}
	return &oauthListener{server: srv, listener: l, tasks: map[string]func(context.Context) error{
		"oauth keyring": keys.Run,
		"oauth bundle":  bundles.run(log),
	}}, nil
}

func (o *oauthListener) serve() error {
	var err error
	if o.server.TLSConfig != nil {
		err = o.server.ServeTLS(o.listener, "", "") // the certificate comes from GetCertificate
	} else {
		err = o.server.Serve(o.listener)
	}
	if !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// refreshingJWTBundle is the trust domain's JWT bundle, re-read from SPIRE
// every jwtBundleRefresh. A failed refresh keeps the last bundle: SPIRE's
// keys outlive a short outage, and the log says it.
type refreshingJWTBundle struct {
	td     spiffeid.TrustDomain
	fetch  jwtBundleFetcher
	bundle atomic.Pointer[jwtbundle.Bundle]
}

func (b *refreshingJWTBundle) refresh(ctx context.Context) error {
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	got, err := b.fetch.GetJWTBundle(rctx, b.td)
	if err != nil {
		return err
	}
	b.bundle.Store(got)
	return nil
}

func (b *refreshingJWTBundle) run(log logrus.FieldLogger) func(context.Context) error {
	return func(ctx context.Context) error {
		t := time.NewTicker(jwtBundleRefresh)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-t.C:
				if err := b.refresh(ctx); err != nil && ctx.Err() == nil {
					log.WithError(err).Warn("Failed to refresh the JWT bundle; using the last one")
				}
			}
		}
	}
}

// GetJWTBundleForTrustDomain implements jwtbundle.Source.
func (b *refreshingJWTBundle) GetJWTBundleForTrustDomain(td spiffeid.TrustDomain) (*jwtbundle.Bundle, error) {
	got := b.bundle.Load()
	if td != b.td || got == nil {
		return nil, fmt.Errorf("no JWT bundle for trust domain %q", td)
	}
	return got, nil
}

// certFiles serves a certificate from files, re-read when either file's
// modification time changes (cert-manager and ingress controllers replace
// them in place).
type certFiles struct {
	key               string // the config key errors name; default "oauth.tls"
	certFile, keyFile string
	now               func() time.Time // time.Now when nil
	mu                sync.Mutex
	cert              *tls.Certificate
	certMod, keyMod   time.Time
	checked           time.Time
}

func (c *certFiles) errKey() string {
	if c.key == "" {
		return "oauth.tls"
	}
	return c.key
}

func (c *certFiles) get() (*tls.Certificate, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	if c.now != nil {
		now = c.now()
	}
	if c.cert != nil && now.Sub(c.checked) < time.Second {
		return c.cert, nil
	}
	c.checked = now
	ci, err1 := os.Stat(c.certFile)
	ki, err2 := os.Stat(c.keyFile)
	if err := errors.Join(err1, err2); err != nil {
		if c.cert != nil {
			return c.cert, nil // a rename in progress: keep serving the last pair
		}
		return nil, fmt.Errorf("%s: %w", c.errKey(), err)
	}
	if c.cert != nil && ci.ModTime().Equal(c.certMod) && ki.ModTime().Equal(c.keyMod) {
		return c.cert, nil
	}
	cert, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
	if err != nil {
		if c.cert != nil {
			return c.cert, nil // half-written pair: the next check retries
		}
		return nil, fmt.Errorf("%s: %w", c.errKey(), err)
	}
	c.cert, c.certMod, c.keyMod = &cert, ci.ModTime(), ki.ModTime()
	return c.cert, nil
}
