package httpmw

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/agentid/agentid/pkg/verify"
)

// DefaultRealm is the realm named in WWW-Authenticate challenges.
const DefaultRealm = "agentid"

// Config configures the middleware. Verifier is required.
type Config struct {
	// Verifier checks the token against the connection's peer.
	Verifier *verify.Verifier
	// Require is checked, in order, on every verified principal; a failure
	// is a 403. Per-route requirements go in Require handlers instead.
	Require []verify.Requirement
	// Realm names the protection space in WWW-Authenticate. Default
	// DefaultRealm.
	Realm string
	// OnError, when set, is called with every refused request and the
	// reason, e.g. to log it. The middleware itself logs nothing.
	OnError func(r *http.Request, err error)
}

// Middleware authenticates agent calls on an HTTP server.
type Middleware struct {
	config Config
}

// New returns a Middleware for config.
func New(config Config) (*Middleware, error) {
	if config.Verifier == nil {
		return nil, errors.New("httpmw: verifier is required")
	}
	if config.Realm == "" {
		config.Realm = DefaultRealm
	}
	if strings.ContainsAny(config.Realm, "\"\\") {
		return nil, errors.New("httpmw: realm must not contain quotes or backslashes")
	}
	config.Require = append([]verify.Requirement(nil), config.Require...)
	return &Middleware{config: config}, nil
}

// Handler returns next behind authentication: the request must come over a
// connection with a verified X509-SVID (serve with verify.ServerTLSConfig)
// and carry "Authorization: Bearer <JWT-SVID>" for that peer. next finds the
// principal with PrincipalFrom.
func (m *Middleware) Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := m.authenticate(r)
		if err == nil {
			err = p.Check(m.config.Require...)
		}
		if err != nil {
			m.refuse(w, r, err)
			return
		}
		next.ServeHTTP(w, r.WithContext(verify.NewContext(r.Context(), p)))
	})
}

func (m *Middleware) authenticate(r *http.Request) (*verify.Principal, error) {
	token, err := bearerToken(r)
	if err != nil {
		return nil, err
	}
	peer, err := verify.PeerID(r.TLS)
	if err != nil {
		return nil, err
	}
	p, err := m.config.Verifier.Verify(peer, token)
	if err != nil {
		return nil, err
	}
	return &p, nil
}

// Require returns middleware for one route that checks reqs on the principal
// a Middleware in front of it verified. A request that did not pass through
// one is refused with 401.
func (m *Middleware) Require(reqs ...verify.Requirement) func(http.Handler) http.Handler {
	reqs = append([]verify.Requirement(nil), reqs...)
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p, ok := verify.FromContext(r.Context())
			if !ok {
				m.refuse(w, r, fmt.Errorf("%w: request did not pass the authentication middleware", verify.ErrNoToken))
				return
			}
			if err := p.Check(reqs...); err != nil {
				m.refuse(w, r, err)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// PrincipalFrom returns the principal the middleware verified for r.
func PrincipalFrom(r *http.Request) (*verify.Principal, bool) {
	return verify.FromContext(r.Context())
}

func bearerToken(r *http.Request) (string, error) {
	token, err := verify.ParseBearer(r.Header.Values("Authorization"))
	if errors.Is(err, verify.ErrBadAuthorization) {
		return "", ErrBadAuthorization
	}
	return token, err
}

// ErrorBody is the JSON body of every refusal, with RFC 6750 error codes.
type ErrorBody struct {
	// Error is invalid_request, invalid_token, insufficient_scope,
	// access_denied or temporarily_unavailable.
	Error string `json:"error"`
	// Description is the reason; it never contains the token.
	Description string `json:"error_description"`
}

func (m *Middleware) refuse(w http.ResponseWriter, r *http.Request, err error) {
	if m.config.OnError != nil {
		m.config.OnError(r, err)
	}
	body := ErrorBody{Description: err.Error()}
	var status int
	challenge := `Bearer realm="` + m.config.Realm + `"`
	switch verify.ClassOf(err) {
	case verify.ClassForbidden:
		status, body.Error = http.StatusForbidden, "access_denied"
		if errors.Is(err, verify.ErrInsufficientScope) {
			body.Error = "insufficient_scope"
			challenge += `, error="insufficient_scope", error_description="` + quotable(body.Description) + `"`
		} else {
			challenge = ""
		}
	case verify.ClassUnavailable:
		status, body.Error, challenge = http.StatusServiceUnavailable, "temporarily_unavailable", ""
		w.Header().Set("Retry-After", "1")
	default:
		status = http.StatusUnauthorized
		switch {
		case errors.Is(err, verify.ErrNoToken):
			// RFC 6750 §3.1: no error code when no credentials were sent.
			body.Error = "invalid_request"
		case errors.Is(err, ErrBadAuthorization), errors.Is(err, verify.ErrNoPeer):
			body.Error = "invalid_request"
			challenge += `, error="invalid_request", error_description="` + quotable(body.Description) + `"`
		default:
			body.Error = "invalid_token"
			challenge += `, error="invalid_token", error_description="` + quotable(body.Description) + `"`
		}
	}
	h := w.Header()
	if challenge != "" {
		h.Set("WWW-Authenticate", challenge)
	}
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

// quotable keeps the characters RFC 6750 allows in error_description.
func quotable(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '"' || r == '\\' {
			return '\''
		}
		if r < 0x20 || r > 0x7e {
			return '?'
		}
		return r
	}, s)
}
