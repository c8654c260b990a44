package authserver

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"

	"github.com/go-jose/go-jose/v4"

	"github.com/agentid/agentid/pkg/claims"
	"github.com/agentid/agentid/pkg/store"
)

var (
	refuseIntrospectAuth = refuse(http.StatusUnauthorized, ErrorInvalidClient, "introspection_auth",
		"introspection requires client_secret_basic as a registered resource or an X509-SVID")
	refuseNoToken = refuse(http.StatusBadRequest, ErrorInvalidRequest, "no_token", "token is required")
)

// serveIntrospection answers RFC 7662 introspection of the access tokens
// this server issued. A token is active when it verifies under a published
// key, names this issuer, has not expired, and its delegation and the root
// of its chain are active in the store now: a revocation shows at the next
// call, without waiting for the token's exp.
func (s *Server) serveIntrospection(w http.ResponseWriter, r *http.Request) {
	g := &grantRequest{remote: remoteHost(r)}
	form, ref := readForm(r)
	if ref == nil {
		var caller string
		caller, ref = s.introspectionCaller(r)
		g.actor = caller
		if ref == nil {
			token := form.Get("token")
			if token == "" {
				ref = refuseNoToken
			} else {
				var body []byte
				body, ref = s.introspect(r, caller, token)
				if ref == nil {
					h := w.Header()
					h.Set("Content-Type", "application/json")
					h.Set("Cache-Control", "no-store")
					_, _ = w.Write(body) //nolint:gosec // a JSON body the handler built, sent as application/json: no HTML context to inject into
					return
				}
			}
		}
	}
	s.deny(r.Context(), "introspect", g, ref)
	if ref.code == ErrorInvalidClient {
		w.Header().Set("WWW-Authenticate", `Basic realm="agentid"`)
	}
	writeError(w, ref)
}

// introspectionCaller authenticates the caller: HTTP Basic with a resource
// URI and its introspection secret (the caller is then that resource and
// learns only of tokens for it), or an X509-SVID.
func (s *Server) introspectionCaller(r *http.Request) (string, *refusal) {
	if rawID, rawPass, ok := r.BasicAuth(); ok {
		// RFC 6749 §2.3.1: both are form-encoded before Basic encoding, which
		// lets a URI (with its colon) be the client id.
		id, err1 := url.QueryUnescape(rawID)
		pass, err2 := url.QueryUnescape(rawPass)
		if err1 != nil || err2 != nil {
			return "", refuseIntrospectAuth
		}
		res, known := s.resources[id]
		if !known || res.IntrospectionSecret == "" ||
			subtle.ConstantTimeCompare([]byte(pass), []byte(res.IntrospectionSecret)) != 1 {
			return "", refuseIntrospectAuth
		}
		return res.URI, nil
	}
	peer, _, ref := s.peer(r)
	if ref != nil {
		return "", ref
	}
	if peer.IsZero() {
		return "", refuseIntrospectAuth
	}
	return peer.String(), nil
}

var inactive = []byte(`{"active":false}`)

func (s *Server) introspect(r *http.Request, caller, token string) ([]byte, *refusal) {
	at, payload, ok := s.parseOwnToken(token)
	if !ok {
		return inactive, nil
	}
	now := s.config.Clock()
	if !now.Before(at.ExpiresAt) || at.Issuer != s.config.Issuer {
		return inactive, nil
	}
	if res, isResource := s.resources[caller]; isResource && res.URI != at.Audience {
		return inactive, nil // RFC 7662 §4: a resource learns nothing of others' tokens
	}
	// The delegation alone tells: revoking the root revokes it in the same
	// store transaction (see grant).
	d, err := s.config.Store.GetDelegation(r.Context(), at.Delegation)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return inactive, nil
	case err != nil:
		return nil, refuseStore.with(err.Error())
	case !d.ActiveAt(now) || d.Root != at.Root:
		return inactive, nil
	}
	var all map[string]any
	if err := json.Unmarshal(payload, &all); err != nil {
		return inactive, nil
	}
	all["active"] = true
	all["token_type"] = tokenTypeBearer
	b, err := json.Marshal(all)
	if err != nil {
		return nil, refuseSign.with(err.Error())
	}
	return b, nil
}

// parseOwnToken verifies a token against this server's published keys and
// decodes its claims. It checks typ at+jwt so that no other JWT this key
// could sign is read as an access token.
func (s *Server) parseOwnToken(token string) (claims.AccessToken, []byte, bool) {
	if len(token) > MaxAssertionSize {
		return claims.AccessToken{}, nil, false
	}
	jws, err := jose.ParseSignedCompact(token, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil || len(jws.Signatures) != 1 {
		return claims.AccessToken{}, nil, false
	}
	h := jws.Signatures[0].Header
	if typ, _ := h.ExtraHeaders[jose.HeaderType].(string); typ != claims.AccessTokenType {
		return claims.AccessToken{}, nil, false
	}
	key, ok := s.config.Keys.PublicKey(h.KeyID)
	if !ok {
		return claims.AccessToken{}, nil, false
	}
	payload, err := jws.Verify(key)
	if err != nil {
		return claims.AccessToken{}, nil, false
	}
	at, err := claims.DecodeAccessToken(payload)
	if err != nil {
		return claims.AccessToken{}, nil, false
	}
	return at, payload, true
}
