// Package userpage is the page where the person agents act for sees
// agentid: she signs in through her OpenID provider and sees the
// delegations she made, as trees of sub-delegations, each one's audit
// story, and revokes what she no longer wants, with the cascade shown first.
// The declared agents are listed with their ceilings and SPIRE sync state.
// Admins (a configured user list or group) see everyone's delegations.
//
// agentid-server serves it on its own HTTPS listener when its config has a
// user_page section:
//
//	page, err := userpage.New(userpage.Config{
//		URL:      "https://agentid.example.com:8444",
//		Issuer:   "https://idp.example.com",
//		ClientID: "agentid-page",
//		Store:    st,    // store.Store
//		Users:    users, // the server's *oidcauth.Authenticator
//	})
//	...
//	srv := &http.Server{Handler: page, TLSConfig: ...}
//
// # Sign-in
//
// The OpenID Connect authorization code flow with PKCE (S256), through
// golang.org/x/oauth2 with the endpoints go-oidc discovers at the first
// sign-in (so the server starts while the IdP is down). A random state and
// nonce are kept server side, bound to the browser by a short-lived login
// cookie; the callback needs that cookie, the same state, a code the token
// endpoint redeems with the PKCE verifier, and an ID token that passes
// oidcauth (the same issuer allow-list, signature, audience, expiry and
// claim rules as an API caller's user token) and carries the nonce. Each
// refusal is logged with a reason (state_mismatch, nonce_mismatch,
// id_token_expired ...); the browser gets one fixed message.
//
// # Sessions
//
// A session lives in the server's memory (a restart signs everyone out) and
// is named by 256 random bits in a __Host- cookie: HttpOnly, Secure,
// SameSite=Lax, host-only, path /. It ends after IdleTimeout unused, after
// MaxAge whatever happens, and on sign-out. Sessions and sign-ins in
// progress are each bounded by MaxSessions.
//
// # What the browser may do
//
// Pages are html/template with the stylesheet embedded (go:embed); there is
// no script, no CDN, and the Content-Security-Policy allows only the page's
// own stylesheet and forms posting to itself, frame-ancestors 'none' (and
// X-Frame-Options DENY). Every state-changing request is a POST form that
// must carry the session's CSRF token and, when the browser sends Origin,
// the page's own; a refused post changes nothing. A delegation id that is
// malformed, unknown or another user's answers the same 404.
//
// Revoking goes to the store as the API's RevokeDelegation does (the
// delegation and its active descendants in one transaction, an audit event
// with actor "user:<issuer>#<subject>" and via "user_page"), so the
// composer, verifiers and watchers see it at once.
package userpage
