package whoami

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/agentid/agentid/pkg/verify"
	"github.com/agentid/agentid/pkg/verify/httpmw"
	"github.com/agentid/agentid/pkg/verify/revocation"
	delegationv1 "github.com/agentid/agentid/proto/agentid/delegation/v1"
	"github.com/spiffe/go-spiffe/v2/spiffegrpc/grpccredentials"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
	"google.golang.org/grpc"
)

// Config configures the service.
type Config struct {
	// WorkloadAPIAddr is the SPIRE agent socket; empty means
	// SPIFFE_ENDPOINT_SOCKET.
	WorkloadAPIAddr string
	// Listen is the mTLS listen address, e.g. "127.0.0.1:8443".
	Listen string
	// Audience is the token audience the service accepts; empty means the
	// service's own SPIFFE ID.
	Audience string
	// ServerAddr and ServerID locate agentid-server for the revocation
	// watch. Both are required unless InsecureNoRevocation is set.
	ServerAddr string
	ServerID   spiffeid.ID
	// InsecureNoRevocation runs without revocation checking when ServerAddr
	// is empty: tokens of a revoked delegation are then accepted until they
	// expire. Only for trying the example out; a real service must follow
	// revocations.
	InsecureNoRevocation bool
	// Log receives the service's log; nil discards it.
	Log *slog.Logger
}

// Answer is the JSON body of GET /whoami.
type Answer struct {
	Agent      string     `json:"agent"`
	User       User       `json:"user"`
	Scopes     []string   `json:"scopes"`
	Delegation Delegation `json:"delegation"`
}

// User is the delegating user.
type User struct {
	Issuer  string `json:"iss"`
	Subject string `json:"sub"`
	Email   string `json:"email,omitempty"`
}

// Delegation is the grant behind the call.
type Delegation struct {
	ID        string    `json:"id"`
	Root      string    `json:"root"`
	Chain     []string  `json:"chain"`
	ExpiresAt time.Time `json:"expires_at"`
}

// Service is a running whoami service.
type Service struct {
	id     spiffeid.ID
	srv    *http.Server
	l      net.Listener
	client *workloadapi.Client
	x509   *workloadapi.X509Source
	jwt    *workloadapi.JWTSource
	conn   *grpc.ClientConn
	cancel context.CancelFunc
	done   chan struct{}
}

// Start fetches the service's identity, starts the revocation watch (and
// waits for its first snapshot), and serves in the background. It refuses
// a config without agentid-server unless InsecureNoRevocation says so.
func Start(ctx context.Context, config Config) (*Service, error) {
	switch {
	case config.ServerAddr == "" && !config.InsecureNoRevocation:
		return nil, errors.New("whoami: invalid config: the agentid-server address is required to follow revocations (opt out with InsecureNoRevocation)")
	case config.ServerAddr != "" && config.ServerID.IsZero():
		return nil, errors.New("whoami: invalid config: agentid-server's SPIFFE ID is required with its address")
	}
	log := config.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if config.ServerAddr == "" {
		log.Warn("Revocation checking is off: tokens of revoked delegations are accepted until they expire")
	}
	var clientOpts []workloadapi.ClientOption
	if config.WorkloadAPIAddr != "" {
		clientOpts = append(clientOpts, workloadapi.WithAddr(config.WorkloadAPIAddr))
	}
	s := &Service{done: make(chan struct{})}
	var err error
	if s.client, err = workloadapi.New(ctx, clientOpts...); err != nil {
		return nil, fmt.Errorf("whoami: Workload API: %w", err)
	}
	fail := func(err error) (*Service, error) { s.close(); return nil, err }
	if s.x509, err = workloadapi.NewX509Source(ctx, workloadapi.WithClient(s.client)); err != nil {
		return fail(fmt.Errorf("whoami: X509-SVID: %w", err))
	}
	if s.jwt, err = workloadapi.NewJWTSource(ctx, workloadapi.WithClient(s.client)); err != nil {
		return fail(fmt.Errorf("whoami: JWT bundles: %w", err))
	}
	svid, err := s.x509.GetX509SVID()
	if err != nil {
		return fail(err)
	}
	s.id = svid.ID
	audience := config.Audience
	if audience == "" {
		audience = s.id.String()
	}
	vc := verify.Config{
		Bundles: s.jwt, Audiences: []string{audience}, TrustDomains: []spiffeid.TrustDomain{s.id.TrustDomain()},
		InsecureNoRevocation: config.ServerAddr == "", // checked above: only with config.InsecureNoRevocation
	}
	runCtx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	if config.ServerAddr != "" {
		creds := grpccredentials.MTLSClientCredentials(s.x509, s.x509, tlsconfig.AuthorizeID(config.ServerID))
		if s.conn, err = grpc.NewClient(config.ServerAddr, grpc.WithTransportCredentials(creds)); err != nil {
			return fail(err)
		}
		w, err := revocation.New(revocation.Config{Client: delegationv1.NewDelegationServiceClient(s.conn), Logger: log})
		if err != nil {
			return fail(err)
		}
		go w.Run(runCtx) //nolint:errcheck // Run returns only ctx's error, at shutdown
		if err := w.Ready(ctx); err != nil {
			return fail(fmt.Errorf("whoami: revocation watch not ready: %w", err))
		}
		vc.Revocation = w
	}
	v, err := verify.New(vc)
	if err != nil {
		return fail(err)
	}
	mw, err := httpmw.New(httpmw.Config{Verifier: v})
	if err != nil {
		return fail(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /whoami", whoami)
	if s.l, err = net.Listen("tcp", config.Listen); err != nil {
		return fail(err)
	}
	s.srv = &http.Server{
		Handler:           mw.Handler(mux),
		TLSConfig:         verify.ServerTLSConfig(s.x509, s.x509, tlsconfig.AuthorizeMemberOf(s.id.TrustDomain())),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	go func() {
		defer close(s.done)
		if err := s.srv.ServeTLS(s.l, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("Serve failed", "error", err.Error())
		}
	}()
	log.Info("Service started", "spiffe_id", s.id.String(), "listen", s.l.Addr().String(), "audience", audience,
		"revocation", config.ServerAddr != "")
	return s, nil
}

// Run serves until ctx ends.
func Run(ctx context.Context, config Config) error {
	s, err := Start(ctx, config)
	if err != nil {
		return err
	}
	<-ctx.Done()
	return s.Close()
}

// Addr is the listen address.
func (s *Service) Addr() net.Addr { return s.l.Addr() }

// ID is the service's SPIFFE ID.
func (s *Service) ID() spiffeid.ID { return s.id }

// Close stops the service.
func (s *Service) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := s.srv.Shutdown(ctx)
	<-s.done
	s.close()
	return err
}

func (s *Service) close() {
	if s.cancel != nil {
		s.cancel()
	}
	if s.conn != nil {
		s.conn.Close()
	}
	if s.jwt != nil {
		s.jwt.Close()
	}
	if s.x509 != nil {
		s.x509.Close()
	}
	if s.client != nil {
		s.client.Close()
	}
}

func whoami(w http.ResponseWriter, r *http.Request) {
	p, ok := httpmw.PrincipalFrom(r)
	if !ok {
		// Mounted without the verify middleware: nobody was authenticated,
		// so there is nobody to describe. Fail closed.
		http.Error(w, "whoami: no verified caller", http.StatusInternalServerError)
		return
	}
	a := Answer{
		Agent:  p.Agent.String(),
		User:   User{Issuer: p.User.Issuer(), Subject: p.User.Subject(), Email: p.User.Email()},
		Scopes: p.Scopes.Strings(),
		Delegation: Delegation{ID: p.Delegation.ID.String(), Root: p.Delegation.Root.String(),
			ExpiresAt: p.Delegation.ExpiresAt.UTC()},
	}
	for _, c := range p.Delegation.Chain {
		a.Delegation.Chain = append(a.Delegation.Chain, c.String())
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(a) //nolint:errcheck,gosec // a plain struct to the client; an error means the client has gone
}
