package mcpauth

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/oauthex"
	"golang.org/x/oauth2"

	"github.com/agentid/agentid/pkg/agentclient"
	"github.com/agentid/agentid/pkg/delegation"
)

// ErrUntrustedAuthorizationServer means the resource's metadata does not
// name agentid-server's issuer among its authorization servers: the agent
// gets it no token (and sends nothing elsewhere).
var ErrUntrustedAuthorizationServer = errors.New("mcpauth: the resource does not name agentid-server as its authorization server")

// InsufficientScopeError is the MCP server's 403 insufficient_scope: the
// call needs Needed, of which the agent's token lacks Missing. The agent
// needs a delegation that grants them (the user's approval); retrying does
// not help.
type InsufficientScopeError struct {
	Resource string
	Needed   []string
	Missing  []string
}

func (e *InsufficientScopeError) Error() string {
	return fmt.Sprintf("mcpauth: %s needs scope %q, which the delegation does not grant (missing %q)",
		e.Resource, strings.Join(e.Needed, " "), strings.Join(e.Missing, " "))
}

// ClientConfig configures an OAuthHandler. Tokens, Issuer, Delegation and
// Resource are required.
type ClientConfig struct {
	// Tokens are the agent's access tokens (agentclient.AccessTokens for
	// Issuer).
	Tokens *agentclient.AccessTokens
	// Issuer is agentid-server's issuer; the resource's metadata must name
	// it.
	Issuer string
	// Delegation is the delegation the agent acts under.
	Delegation delegation.ID
	// Resource is the MCP server's canonical URI.
	Resource string
	// Scopes asked for; none: all the delegation and the resource allow.
	Scopes []string
	// HTTPClient fetches the resource's metadata. Default
	// http.DefaultClient.
	HTTPClient *http.Client
}

// OAuthHandler is a go-sdk auth.OAuthHandler for an agent: its token
// source is agentid access tokens for the resource; on a 401 it checks the
// resource's RFC 9728 metadata names agentid-server, drops the cached token
// and lets the transport retry once with a new one; on a 403
// insufficient_scope it fails the call with *InsufficientScopeError.
type OAuthHandler struct {
	config ClientConfig
}

var _ auth.OAuthHandler = (*OAuthHandler)(nil)

// NewOAuthHandler validates config.
func NewOAuthHandler(config ClientConfig) (*OAuthHandler, error) {
	if config.Tokens == nil || config.Issuer == "" || config.Delegation.IsZero() || config.Resource == "" {
		return nil, errors.New("mcpauth: invalid config: tokens, issuer, delegation and resource are required")
	}
	if config.HTTPClient == nil {
		config.HTTPClient = http.DefaultClient
	}
	return &OAuthHandler{config: config}, nil
}

// TokenSource implements auth.OAuthHandler.
func (h *OAuthHandler) TokenSource(ctx context.Context) (oauth2.TokenSource, error) {
	return h.config.Tokens.TokenSource(ctx, h.config.Delegation, h.config.Resource, h.config.Scopes...), nil
}

// Authorize implements auth.OAuthHandler.
func (h *OAuthHandler) Authorize(ctx context.Context, _ *http.Request, resp *http.Response) error {
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	challenges, _ := oauthex.ParseWWWAuthenticate(resp.Header.Values("WWW-Authenticate"))
	var bearer map[string]string
	for _, c := range challenges {
		if c.Scheme == "bearer" {
			bearer = c.Params
		}
	}
	if resp.StatusCode == http.StatusForbidden {
		if bearer["error"] != "insufficient_scope" {
			return fmt.Errorf("mcpauth: %s answered 403 without insufficient_scope", h.config.Resource)
		}
		needed := strings.Fields(bearer["scope"])
		held, err := h.held(ctx)
		if err != nil {
			return err
		}
		e := &InsufficientScopeError{Resource: h.config.Resource, Needed: needed}
		for _, s := range needed {
			if !slices.Contains(held, s) {
				e.Missing = append(e.Missing, s)
			}
		}
		return e
	}
	if md := bearer["resource_metadata"]; md != "" {
		prm, err := oauthex.GetProtectedResourceMetadata(ctx, md, h.config.Resource, h.config.HTTPClient)
		if err != nil {
			return fmt.Errorf("mcpauth: resource metadata: %w", err)
		}
		if !slices.Contains(prm.AuthorizationServers, h.config.Issuer) {
			return fmt.Errorf("%w: it names %q", ErrUntrustedAuthorizationServer, prm.AuthorizationServers)
		}
	}
	// 401: the token was refused (revoked, expired, its key retired).
	// Ask anew; the transport retries once.
	h.config.Tokens.Forget(h.config.Delegation, h.config.Resource, h.config.Scopes...)
	_, err := h.config.Tokens.Token(ctx, h.config.Delegation, h.config.Resource, h.config.Scopes...)
	return err
}

// held is the scope of the current token.
func (h *OAuthHandler) held(ctx context.Context) ([]string, error) {
	t, err := h.config.Tokens.Token(ctx, h.config.Delegation, h.config.Resource, h.config.Scopes...)
	if err != nil {
		return nil, err
	}
	return strings.Fields(t.Scope), nil
}
