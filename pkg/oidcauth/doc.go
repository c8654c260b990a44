// Package oidcauth verifies the OpenID Connect tokens of the users who
// delegate to agents. agentid-server calls it once per CreateDelegation, with
// the token the front end or the agent passed on, and puts the verified issuer,
// subject and email into the delegation.
//
// Configure an allow-list of issuers, each with the audiences it may issue
// tokens for:
//
//	auth, err := oidcauth.New(oidcauth.Config{
//		Issuers: []oidcauth.IssuerConfig{{
//			URL:                  "https://idp.example.com",
//			Audiences:            []string{"chat-frontend"},
//			GroupsClaim:          "groups",
//			RequireVerifiedEmail: true,
//		}},
//	})
//	...
//	id, err := auth.Authenticate(ctx, rawToken)
//	switch {
//	case errors.Is(err, oidcauth.ErrIssuerUnavailable):
//		// the IdP is down: status Unavailable, oidcauth.ErrIssuerUnavailable.Error()
//	case err != nil:
//		// status Unauthenticated, oidcauth.ErrInvalidToken.Error();
//		// log and audit oidcauth.ReasonOf(err) (or the *TokenError)
//	}
//	// id.User, id.Groups, id.Expiry ...
//
// # What is checked
//
// The token must be at most Config.MaxTokenSize bytes (checked before any
// parsing), a compact JWS signed with RS256, ES256 or EdDSA ("none" and HMAC
// are refused, so is a key-confusion token signed with HS256 and the public
// key as secret), and without critical header extensions. Its unverified
// "iss" selects the issuer; an issuer not on the allow-list is refused without
// a network request. The signature must verify with the issuer's key named by
// "kid". Then sub, exp and iat are required; exp, nbf and iat are checked with
// Config.ClockSkew; one "aud" value must be accepted; the email is kept only
// when "email_verified" is true (and required when the issuer says so); the
// groups claim must be a string or a list of at most MaxGroups printable
// strings. A nonce claim must be a string; it is returned in
// Identity.Nonce, not checked (the user page compares it with the one its
// sign-in sent).
//
// # Errors
//
// A caller who sent a bad token gets one fixed message, ErrInvalidToken. The
// returned *TokenError carries a Reason (malformed, expired, wrong_audience...)
// for the log and the "denied" audit event; its text never contains the token,
// a claim value, the kid or the unverified issuer. When the issuer's discovery
// document or keys cannot be fetched the reason is issuer_unavailable and the
// error also wraps ErrIssuerUnavailable, so the server can answer "retry"
// instead of "unauthenticated". The package does not log.
//
// # Fetching and caching
//
// New does no network I/O. The first token of an issuer fetches its discovery
// document (URL + "/.well-known/openid-configuration", whose "issuer" must
// equal URL) and its key set; later tokens use the cache. A server therefore
// starts while its IdP is down and fails closed per request until the IdP
// answers; Prefetch warms the cache at start-up when wanted.
//
// A token whose kid is not cached triggers one refresh of the key set, which
// picks up a rotated key. Refreshes of an issuer run one at a time and at most
// once per Config.MinRefreshInterval, whatever triggered them, so tokens with
// random kids cost the IdP at most one request per interval; within the
// interval an unknown kid is refused at once. Keys older than
// Config.KeysMaxAge are refreshed in the background; if that fails the cached
// keys stay in use. Fetches are bounded by Config.FetchTimeout and
// Config.MaxResponseSize, and a redirect to another host or scheme is refused.
//
// This package verifies with go-jose directly rather than with go-oidc's
// IDTokenVerifier: go-oidc's RemoteKeySet refetches on every unknown kid with
// no rate limit (only concurrent fetches are merged), reads responses without
// a size bound, and reports failures as strings, which would not give the
// exact reasons above.
package oidcauth
