package userpage

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/agentid/agentid/pkg/audit"
	"github.com/agentid/agentid/pkg/delegation"
	"github.com/agentid/agentid/pkg/oidcauth"
	"github.com/agentid/agentid/pkg/store"
	"github.com/sirupsen/logrus"
)

// Defaults of Config.
const (
	DefaultIdleTimeout = 30 * time.Minute
	DefaultMaxAge      = 12 * time.Hour
	DefaultMaxSessions = 10000
	// LoginTimeout bounds a sign-in: the time between leaving for the IdP
	// and coming back with a code.
	LoginTimeout = 10 * time.Minute
	// MaxListed bounds the delegations read for one listing; beyond it the
	// page says that it shows only the oldest MaxListed.
	MaxListed = 10000
	// TreesPerPage is how many root delegations (with their trees) a page
	// of the listing shows.
	TreesPerPage = 50
	// MaxStoryEvents bounds the audit events shown on a delegation's page.
	MaxStoryEvents = 1000
)

// Store is what the page reads and writes: store.Store has it.
type Store interface {
	GetDelegation(ctx context.Context, id delegation.ID) (*delegation.Delegation, error)
	ListDelegations(ctx context.Context, f store.Filter, p store.Page) ([]*delegation.Delegation, string, error)
	Revision(ctx context.Context) (store.Revision, error)
	Children(ctx context.Context, id delegation.ID) ([]*delegation.Delegation, error)
	RevokeDelegation(ctx context.Context, r store.Revocation) ([]delegation.ID, store.Revision, error)
	ListEvents(ctx context.Context, f store.EventFilter, p store.Page) ([]audit.Event, string, error)
	AuditBase(ctx context.Context) (audit.Anchor, error)
	ListAgents(ctx context.Context) ([]store.Agent, error)
}

// Authenticator verifies the ID token the sign-in returns: the server's
// oidcauth.Authenticator, so a page user is verified by exactly the rules
// an API caller's token is.
type Authenticator interface {
	Authenticate(ctx context.Context, rawToken string) (oidcauth.Identity, error)
}

// Config configures the page.
type Config struct {
	// URL is the page's external base URL, https, without a path: the
	// browser reaches the page there and the IdP redirects to URL/callback
	// (register that redirect URI with the IdP).
	URL string
	// Issuer is the OpenID provider users sign in with. It must be one of
	// the issuers Users accepts, with ClientID among its audiences.
	Issuer string
	// ClientID and ClientSecret are the page's OAuth client at the IdP. An
	// empty secret makes it a public client (PKCE still protects the code).
	ClientID, ClientSecret string
	// Scopes asked at sign-in; default openid, profile, email.
	Scopes []string

	Store Store
	Users Authenticator

	// AdminUsers ("<issuer>#<subject>") and members of AdminGroups (the
	// issuer's groups claim) see and revoke every user's delegations.
	AdminUsers, AdminGroups []string

	// IdleTimeout ends a session not used for this long; MaxAge ends any
	// session this long after sign-in, used or not.
	IdleTimeout, MaxAge time.Duration
	// MaxSessions bounds the sessions and the sign-ins in progress each,
	// so unauthenticated requests cannot grow memory without bound.
	MaxSessions int

	// HTTPClient reaches the IdP (discovery and the token endpoint);
	// default a client with a 10 s timeout.
	HTTPClient *http.Client
	// Clock defaults to time.Now.
	Clock func() time.Time
	// Log defaults to a logger that discards.
	Log logrus.FieldLogger
}

func (c *Config) check() error {
	var errs []error
	u, err := url.Parse(c.URL)
	switch {
	case c.URL == "":
		errs = append(errs, errors.New("URL is required"))
	case err != nil || u.Scheme != "https" || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "":
		errs = append(errs, fmt.Errorf("URL %q must be an https URL without a path", c.URL))
	}
	if c.Issuer == "" {
		errs = append(errs, errors.New("issuer is required"))
	}
	if c.ClientID == "" {
		errs = append(errs, errors.New("client ID is required"))
	}
	if c.Store == nil || c.Users == nil {
		errs = append(errs, errors.New("store and user authenticator are required"))
	}
	if c.IdleTimeout < 0 || c.MaxAge < 0 || c.MaxSessions < 0 {
		errs = append(errs, errors.New("timeouts and MaxSessions must not be negative"))
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.MaxAge == 0 {
		c.MaxAge = DefaultMaxAge
	}
	if c.IdleTimeout > c.MaxAge {
		errs = append(errs, fmt.Errorf("idle timeout %s is longer than max age %s", c.IdleTimeout, c.MaxAge))
	}
	if c.MaxSessions == 0 {
		c.MaxSessions = DefaultMaxSessions
	}
	if len(c.Scopes) == 0 {
		c.Scopes = []string{"openid", "profile", "email"}
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
	if c.Log == nil {
		l := logrus.New()
		l.Out = discard{}
		c.Log = l
	}
	if len(errs) > 0 {
		return fmt.Errorf("userpage: %w", errors.Join(errs...))
	}
	return nil
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
