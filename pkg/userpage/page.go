package userpage

import (
	"context"
	"crypto/subtle"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/agentid/agentid/pkg/audit"
	"github.com/agentid/agentid/pkg/oidcauth"
	"github.com/agentid/agentid/pkg/store"
	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/sirupsen/logrus"
	"golang.org/x/oauth2"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// contentSecurityPolicy allows the page's own stylesheet and nothing else:
// no script at all, no frames, forms only to the page itself.
const contentSecurityPolicy = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; " +
	"frame-ancestors 'none'; base-uri 'none'"

// maxFormSize bounds a posted form.
const maxFormSize = 16 << 10

// Page is the user page: an http.Handler.
type Page struct {
	cfg      Config
	origin   string // scheme://host of URL, for the Origin check
	admins   map[string]bool
	groups   map[string]bool
	sessions *sessions
	mux      *http.ServeMux
	tmpl     map[string]*template.Template

	provMu   sync.Mutex
	provider *oidc.Provider // discovered on the first sign-in

	cacheMu  sync.Mutex
	cacheRev store.Revision
	cache    map[store.Filter]cachedListing

	auditMu       sync.Mutex
	auditVerified audit.Anchor // the log is verified from its base to here
	auditBase     audit.Anchor
}

// New checks the Config and returns the page. It does no network I/O: the
// IdP's discovery document is fetched at the first sign-in, so the server
// starts while its IdP is still coming up.
func New(c Config) (*Page, error) {
	if err := c.check(); err != nil {
		return nil, err
	}
	u, _ := url.Parse(c.URL)
	c.URL = strings.TrimSuffix(c.URL, "/")
	p := &Page{
		cfg:      c,
		origin:   u.Scheme + "://" + u.Host,
		admins:   set(c.AdminUsers),
		groups:   set(c.AdminGroups),
		sessions: newSessions(c.IdleTimeout, c.MaxAge, c.MaxSessions),
		mux:      http.NewServeMux(),
		tmpl:     map[string]*template.Template{},
		cache:    map[store.Filter]cachedListing{},
	}
	for _, name := range []string{"message", "delegations", "delegation", "revoke", "agents"} {
		t, err := template.New(name+".html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/node.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("userpage: %w", err)
		}
		p.tmpl[name] = t
	}
	static, _ := fs.Sub(staticFS, "static")
	p.mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	p.mux.HandleFunc("GET /{$}", p.signedIn(func(w http.ResponseWriter, r *http.Request, s session) {
		http.Redirect(w, r, "/delegations", http.StatusSeeOther)
	}))
	p.mux.HandleFunc("GET /login", p.login)
	p.mux.HandleFunc("GET /callback", p.callback)
	p.mux.HandleFunc("GET /signed-out", func(w http.ResponseWriter, r *http.Request) {
		p.render(w, r, http.StatusOK, "message", nil, view{Title: "Signed out", Message: "You are signed out.", SignIn: true})
	})
	p.mux.HandleFunc("POST /logout", p.changes(p.logout))
	p.mux.HandleFunc("GET /delegations", p.signedIn(p.listDelegations))
	p.mux.HandleFunc("GET /delegations/{id}", p.signedIn(p.showDelegation))
	p.mux.HandleFunc("GET /delegations/{id}/revoke", p.signedIn(p.confirmRevoke))
	p.mux.HandleFunc("POST /delegations/{id}/revoke", p.changes(p.revoke))
	p.mux.HandleFunc("GET /agents", p.signedIn(p.listAgents))
	return p, nil
}

func set(list []string) map[string]bool {
	m := make(map[string]bool, len(list))
	for _, s := range list {
		m[s] = true
	}
	return m
}

// ServeHTTP serves the page with its security headers on every answer.
func (p *Page) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	// same-origin, not no-referrer: under no-referrer Chromium sends
	// "Origin: null" with the page's own form posts, which the Origin
	// check then refuses. Other sites still get no Referer (no URL with a
	// code or a delegation id leaves the page).
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Strict-Transport-Security", "max-age=31536000")
	if !strings.HasPrefix(r.URL.Path, "/static/") {
		h.Set("Cache-Control", "no-store")
	}
	p.mux.ServeHTTP(w, r)
}

// currentSession returns the request's live session.
func (p *Page) currentSession(r *http.Request) (session, string, bool) {
	c, err := r.Cookie(sessionCookie)
	if err != nil || c.Value == "" {
		return session{}, "", false
	}
	s, ok := p.sessions.get(c.Value, p.cfg.Clock())
	return s, c.Value, ok
}

// signedIn wraps a page that needs a session: without one the browser is
// sent to sign in and brought back afterwards.
func (p *Page) signedIn(h func(http.ResponseWriter, *http.Request, session)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s, _, ok := p.currentSession(r)
		if !ok {
			http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			return
		}
		h(w, r, s)
	}
}

// changes wraps a state-changing form post: it needs a live session, a
// request from the page's own origin when the browser says where it comes
// from, and the session's CSRF token. Each refusal answers 403 before
// anything is read or changed.
func (p *Page) changes(h func(http.ResponseWriter, *http.Request, session, string)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s, cookie, ok := p.currentSession(r)
		if !ok {
			p.refuse(w, r, http.StatusForbidden, "no_session", "Your session has ended. Sign in again; nothing was changed.")
			return
		}
		if o := r.Header.Get("Origin"); o != "" && o != p.origin {
			p.refuse(w, r, http.StatusForbidden, "cross_origin", "This form was sent from another site; nothing was changed.")
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxFormSize)
		if err := r.ParseForm(); err != nil {
			p.refuse(w, r, http.StatusBadRequest, "bad_form", "The form could not be read; nothing was changed.")
			return
		}
		if subtle.ConstantTimeCompare([]byte(r.PostForm.Get("csrf")), []byte(s.csrf)) != 1 {
			p.refuse(w, r, http.StatusForbidden, "csrf", "This form is not one this page gave you; nothing was changed.")
			return
		}
		h(w, r, s, cookie)
	}
}

func (p *Page) refuse(w http.ResponseWriter, r *http.Request, code int, reason, msg string) {
	p.cfg.Log.WithFields(logrus.Fields{"reason": reason, "path": r.URL.Path, "status": code}).Warn("User page request refused")
	p.render(w, r, code, "message", nil, view{Title: http.StatusText(code), Message: msg, SignIn: reason == "no_session"})
}

// oauth returns the OAuth client configuration, discovering the IdP on
// first use (and again after a failure).
func (p *Page) oauth(ctx context.Context) (*oauth2.Config, error) {
	p.provMu.Lock()
	defer p.provMu.Unlock()
	if p.provider == nil {
		ctx, cancel := context.WithTimeout(oidc.ClientContext(ctx, p.cfg.HTTPClient), 10*time.Second)
		defer cancel()
		prov, err := oidc.NewProvider(ctx, p.cfg.Issuer)
		if err != nil {
			return nil, err
		}
		p.provider = prov
	}
	return &oauth2.Config{
		ClientID: p.cfg.ClientID, ClientSecret: p.cfg.ClientSecret,
		Endpoint: p.provider.Endpoint(), RedirectURL: p.cfg.URL + "/callback", Scopes: p.cfg.Scopes,
	}, nil
}

// localPath returns next when it is a path on this site, "/" otherwise, so
// the sign-in cannot be turned into an open redirect.
func localPath(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n\t") {
		return "/"
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil {
		return "/"
	}
	return next
}

func (p *Page) login(w http.ResponseWriter, r *http.Request) {
	oc, err := p.oauth(r.Context())
	if err != nil {
		p.cfg.Log.WithError(err).Warn("Identity provider discovery failed")
		p.render(w, r, http.StatusServiceUnavailable, "message", nil, view{Title: "Sign-in unavailable",
			Message: "The identity provider cannot be reached. Try again in a moment."})
		return
	}
	l := &login{state: newSecret(), nonce: newSecret(), verifier: oauth2.GenerateVerifier(),
		next: localPath(r.URL.Query().Get("next")), started: p.cfg.Clock()}
	v, ok := p.sessions.startLogin(l, l.started)
	if !ok {
		p.refuse(w, r, http.StatusServiceUnavailable, "too_many_logins", "Too many sign-ins are in progress. Try again in a moment.")
		return
	}
	http.SetCookie(w, &http.Cookie{Name: loginCookie, Value: v, Path: "/", MaxAge: int(LoginTimeout / time.Second),
		Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode})
	http.Redirect(w, r, oc.AuthCodeURL(l.state, oidc.Nonce(l.nonce), oauth2.S256ChallengeOption(l.verifier)), http.StatusFound)
}

// callback completes a sign-in: the state must be the one this browser's
// sign-in sent (CSRF on the login itself), the code is redeemed with the
// PKCE verifier, the ID token must pass oidcauth (issuer, signature,
// audience, expiry: the API's rules) and carry the nonce sent.
func (p *Page) callback(w http.ResponseWriter, r *http.Request) {
	fail := func(reason string, err error) {
		entry := p.cfg.Log.WithField("reason", reason)
		if err != nil {
			entry = entry.WithError(err)
		}
		entry.Warn("Sign-in refused")
		p.render(w, r, http.StatusBadRequest, "message", nil, view{Title: "Sign-in failed",
			Message: "The sign-in could not be completed. Start again.", SignIn: true})
	}
	http.SetCookie(w, &http.Cookie{Name: loginCookie, Value: "", Path: "/", MaxAge: -1, Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode})
	c, err := r.Cookie(loginCookie)
	if err != nil || c.Value == "" {
		fail("no_login_cookie", nil)
		return
	}
	l, ok := p.sessions.takeLogin(c.Value, p.cfg.Clock())
	if !ok {
		fail("unknown_or_stale_login", nil)
		return
	}
	q := r.URL.Query()
	if subtle.ConstantTimeCompare([]byte(q.Get("state")), []byte(l.state)) != 1 {
		fail("state_mismatch", nil)
		return
	}
	if e := q.Get("error"); e != "" {
		// The IdP's own error code, not user data; bounded for the log.
		fail("idp_error", errors.New(truncate(e, 64)))
		return
	}
	code := q.Get("code")
	if code == "" {
		fail("no_code", nil)
		return
	}
	oc, err := p.oauth(r.Context())
	if err != nil {
		fail("idp_unavailable", err)
		return
	}
	ctx := oidc.ClientContext(r.Context(), p.cfg.HTTPClient)
	tok, err := oc.Exchange(ctx, code, oauth2.VerifierOption(l.verifier))
	if err != nil {
		fail("code_exchange", redactOAuthError(err))
		return
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		fail("no_id_token", nil)
		return
	}
	ident, err := p.cfg.Users.Authenticate(r.Context(), raw)
	if err != nil {
		fail("id_token_"+string(oidcauth.ReasonOf(err)), err)
		return
	}
	if ident.User.Issuer() != p.cfg.Issuer || !slices.Contains(ident.Audience, p.cfg.ClientID) {
		fail("id_token_not_for_page", nil)
		return
	}
	if subtle.ConstantTimeCompare([]byte(ident.Nonce), []byte(l.nonce)) != 1 {
		fail("nonce_mismatch", nil)
		return
	}
	now := p.cfg.Clock()
	s := &session{ident: ident, admin: p.isAdmin(ident.User.String(), ident.Groups), csrf: newSecret(), signedIn: now, lastSeen: now}
	v, ok := p.sessions.create(s)
	if !ok {
		p.refuse(w, r, http.StatusServiceUnavailable, "too_many_sessions", "Too many people are signed in. Try again later.")
		return
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: v, Path: "/", Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode})
	p.cfg.Log.WithFields(logrus.Fields{"user": ident.User.String(), "admin": s.admin}).Info("User signed in to the page")
	http.Redirect(w, r, l.next, http.StatusSeeOther)
}

func (p *Page) isAdmin(user string, groups []string) bool {
	if p.admins[user] {
		return true
	}
	for _, g := range groups {
		if p.groups[g] {
			return true
		}
	}
	return false
}

func (p *Page) logout(w http.ResponseWriter, r *http.Request, s session, cookie string) {
	p.sessions.end(cookie)
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1, Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode})
	http.Redirect(w, r, "/signed-out", http.StatusSeeOther)
}

// redactOAuthError keeps the OAuth error code of a failed exchange and
// drops the response body, which an IdP may fill with anything.
func redactOAuthError(err error) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		return fmt.Errorf("token endpoint answered %d %s", re.Response.StatusCode, truncate(re.ErrorCode, 64))
	}
	return err
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
