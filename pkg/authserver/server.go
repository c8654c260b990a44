package authserver

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/agentid/agentid/pkg/internal/denylimit"
	"github.com/agentid/agentid/pkg/verify"
)

// Grant types and token types.
const (
	GrantTypeJWTBearer = "urn:ietf:params:oauth:grant-type:jwt-bearer" //nolint:gosec // RFC 7523's grant type URN, not a credential
	tokenTypeBearer    = "Bearer"
)

// Endpoint paths below the issuer's path.
const (
	TokenPath         = "/token"
	JWKSPath          = "/jwks.json"
	IntrospectionPath = "/introspect"
	metadataWellKnown = "/.well-known/oauth-authorization-server"
)

// Server is the authorization server: metadata, JWKS, token and
// introspection endpoints. It is safe for concurrent use.
type Server struct {
	config     Config
	resources  map[string]*Resource
	assertions *verify.Verifier
	prefix     string // the issuer's path, without a trailing slash
	metadata   []byte
	denials    denylimit.Limiter
	peers      peerCache
}

// New checks config and returns a Server.
func New(config Config) (*Server, error) {
	c, err := config.withDefaults()
	if err != nil {
		return nil, err
	}
	// Assertions are JWT-SVIDs whose audience is the issuer (the composer
	// strips the delegation marker the agent added). Revocation is not
	// asked of the verifier: the grant reads the delegation from the store,
	// which knows at once.
	v, err := verify.New(verify.Config{
		Bundles: c.Bundles, Audiences: []string{c.Issuer}, TrustDomains: c.TrustDomains,
		AllowPlainTokens: true, Clock: c.Clock,
		// Not insecure here: grant reads the delegation and its root from
		// the store right after verifying, which sees a revocation at once.
		InsecureNoRevocation: true,
	})
	if err != nil {
		return nil, err
	}
	s := &Server{config: c, assertions: v, resources: map[string]*Resource{}}
	for i := range c.Resources {
		r := c.Resources[i]
		if r.TokenTTL == 0 {
			r.TokenTTL = c.MaxTokenTTL
		}
		s.resources[r.URI] = &r
	}
	u, _ := url.Parse(c.Issuer)
	s.prefix = strings.TrimSuffix(u.Path, "/")
	s.metadata, err = json.Marshal(s.Metadata())
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Metadata is the RFC 8414 authorization server metadata document.
type Metadata struct {
	Issuer                                string   `json:"issuer"`
	TokenEndpoint                         string   `json:"token_endpoint"`
	JWKSURI                               string   `json:"jwks_uri"`
	IntrospectionEndpoint                 string   `json:"introspection_endpoint"`
	GrantTypesSupported                   []string `json:"grant_types_supported"`
	ResponseTypesSupported                []string `json:"response_types_supported"`
	TokenEndpointAuthMethodsSupported     []string `json:"token_endpoint_auth_methods_supported"`
	IntrospectionEndpointAuthMethods      []string `json:"introspection_endpoint_auth_methods_supported"`
	TLSClientCertificateBoundAccessTokens bool     `json:"tls_client_certificate_bound_access_tokens"`
	AccessTokenSigningAlgValuesSupported  []string `json:"access_token_signing_alg_values_supported,omitempty"`
}

// Metadata returns the server's RFC 8414 metadata.
func (s *Server) Metadata() Metadata {
	base := strings.TrimSuffix(s.config.Issuer, "/")
	return Metadata{
		Issuer:                                s.config.Issuer,
		TokenEndpoint:                         base + TokenPath,
		JWKSURI:                               base + JWKSPath,
		IntrospectionEndpoint:                 base + IntrospectionPath,
		GrantTypesSupported:                   []string{GrantTypeJWTBearer, GrantTypeTokenExchange},
		ResponseTypesSupported:                []string{}, // no authorization endpoint
		TokenEndpointAuthMethodsSupported:     []string{"none", "tls_client_auth"},
		IntrospectionEndpointAuthMethods:      []string{"client_secret_basic", "tls_client_auth"},
		TLSClientCertificateBoundAccessTokens: true,
		AccessTokenSigningAlgValuesSupported:  []string{"ES256"},
	}
}

// MetadataPath is where the metadata is served: RFC 8414 §3.1 inserts the
// well-known segment before the issuer's path.
func (s *Server) MetadataPath() string { return metadataWellKnown + s.prefix }

// Handler serves the four endpoints at their paths (MetadataPath, and
// TokenPath, JWKSPath, IntrospectionPath below the issuer's path).
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc(s.MetadataPath(), s.serveMetadata)
	mux.HandleFunc(s.prefix+JWKSPath, s.serveJWKS)
	mux.HandleFunc(s.prefix+TokenPath, s.serveToken)
	mux.HandleFunc(s.prefix+IntrospectionPath, s.serveIntrospection)
	return mux
}

func (s *Server) serveMetadata(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "max-age=3600")
	_, _ = w.Write(s.metadata)
}

func (s *Server) serveJWKS(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	jwks := s.config.Keys.JWKS()
	if jwks == nil {
		// Fail closed and say so: no keys loaded yet means no tokens either.
		http.Error(w, "signing keys not loaded", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/jwk-set+json")
	w.Header().Set("Cache-Control", "max-age="+strconv.Itoa(int(s.config.Keys.MaxAge().Seconds())))
	_, _ = w.Write(jwks)
}
