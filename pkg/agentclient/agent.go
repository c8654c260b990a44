package agentclient

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
)

// Config configures an Agent.
type Config struct {
	// WorkloadAPIAddr is the SPIRE agent's Workload API socket, e.g.
	// "unix:///run/spire/agent.sock". Empty means the SPIFFE_ENDPOINT_SOCKET
	// environment variable, as every go-spiffe program does.
	WorkloadAPIAddr string
	// ID pins the agent's SPIFFE ID. The Workload API may hand a process
	// more than one X509-SVID; with ID set the Agent uses that one and New
	// fails with ErrNoIdentity if it is not among them. Should SPIRE later
	// stop offering it, X509SVID (and every mTLS handshake) fails rather
	// than the agent switching identity. Empty means the first (SPIRE's
	// default) one.
	ID spiffeid.ID
	// Clock returns the current time for the token cache. Default time.Now.
	Clock func() time.Time
	// MaxCachedTokens bounds the token cache. Default
	// DefaultMaxCachedTokens.
	MaxCachedTokens int
}

// Agent is an agent's view of its own identity: its X509-SVID and trust
// bundle, kept current over the Workload API, and its delegated tokens.
// Build transports and the agentid-server client from it.
type Agent struct {
	client *workloadapi.Client
	x509   *workloadapi.X509Source
	id     spiffeid.ID
	tokens *DelegatedTokens
}

// New connects to the Workload API and waits (bounded by ctx) for the first
// X509-SVID.
func New(ctx context.Context, config Config) (*Agent, error) {
	var opts []workloadapi.ClientOption
	if config.WorkloadAPIAddr != "" {
		opts = append(opts, workloadapi.WithAddr(config.WorkloadAPIAddr))
	}
	client, err := workloadapi.New(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("agentclient: failed to create Workload API client: %w", err)
	}
	want := config.ID
	source, err := workloadapi.NewX509Source(ctx, workloadapi.WithClient(client),
		workloadapi.WithDefaultX509SVIDPicker(pickSVID(want)))
	if err != nil {
		client.Close()
		return nil, fmt.Errorf("%w: failed to get an X509-SVID: %w", ErrUnavailable, err)
	}
	svid, err := source.GetX509SVID()
	switch {
	case err != nil && !want.IsZero():
		// The source has had its first update, so a missing SVID means
		// the picker found none with the pinned ID.
		source.Close()
		client.Close()
		return nil, fmt.Errorf("%w: the Workload API does not offer %s", ErrNoIdentity, want)
	case err != nil:
		source.Close()
		client.Close()
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	tokens, err := NewDelegatedTokens(TokensConfig{
		Fetcher: client, ID: svid.ID, Clock: config.Clock, MaxCachedTokens: config.MaxCachedTokens,
	})
	if err != nil {
		source.Close()
		client.Close()
		return nil, err
	}
	return &Agent{client: client, x509: source, id: svid.ID, tokens: tokens}, nil
}

// ID is the agent's SPIFFE ID.
func (a *Agent) ID() spiffeid.ID { return a.id }

// SVIDs is the agent's current X509-SVID.
func (a *Agent) SVIDs() x509svid.Source { return a.x509 }

// Bundles holds the X.509 trust bundles the Workload API delivers.
func (a *Agent) Bundles() x509bundle.Source { return a.x509 }

// X509SVID returns the current X509-SVID (for its expiry, say).
func (a *Agent) X509SVID() (*x509svid.SVID, error) { return a.x509.GetX509SVID() }

// Tokens is the agent's delegated token cache.
func (a *Agent) Tokens() *DelegatedTokens { return a.tokens }

// Transport returns an mTLS transport to the service whose SPIFFE ID is
// service, attaching delegated tokens whose audience is audience (empty:
// the service's SPIFFE ID).
func (a *Agent) Transport(service spiffeid.ID, audience string) (*Transport, error) {
	if service.IsZero() {
		return nil, fmt.Errorf("agentclient: invalid config: service SPIFFE ID is required")
	}
	if audience == "" {
		audience = service.String()
	}
	return NewTransport(TransportConfig{
		SVIDs: a.x509, Bundles: a.x509, Authorizer: tlsconfig.AuthorizeID(service),
		Tokens: a.tokens, Audience: audience,
	})
}

// DialServer returns a client of agentid-server at address, expected to
// present serverID.
func (a *Agent) DialServer(address string, serverID spiffeid.ID) (*ServerClient, error) {
	return DialServer(ServerConfig{Address: address, ServerID: serverID, SVIDs: a.x509, Bundles: a.x509})
}

// Close stops watching the Workload API.
func (a *Agent) Close() error {
	return errors.Join(a.x509.Close(), a.client.Close())
}

// pickSVID chooses the agent's X509-SVID among those the Workload API
// offers: the one with SPIFFE ID want, or the first when want is zero. It
// is consulted on every update, so when SPIRE stops offering the pinned ID
// it returns nil and GetX509SVID fails (closed) instead of the agent
// silently taking another identity.
func pickSVID(want spiffeid.ID) func([]*x509svid.SVID) *x509svid.SVID {
	return func(svids []*x509svid.SVID) *x509svid.SVID {
		for _, s := range svids {
			if want.IsZero() || s.ID == want {
				return s
			}
		}
		return nil
	}
}
