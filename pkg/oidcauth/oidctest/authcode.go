package oidctest

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"net/http"
	"net/url"
	"testing"
)

// authCode is an issued authorization code, redeemable once.
type authCode struct {
	claims      Claims
	clientID    string
	redirectURI string
	challenge   string
}

// SignIn makes the issuer's authorization endpoint (/auth) sign in the user
// c describes, without a login page: it answers every valid authorization
// request with a redirect carrying a code and the request's state, and the
// token endpoint (/token) redeems the code once, for an ID token whose
// audience is the client and whose nonce is the request's. Requests must use
// PKCE with S256, as the user page does; others get an OAuth error. Until
// SignIn is called, /auth answers access_denied.
func (is *Issuer) SignIn(c Claims) {
	is.mu.Lock()
	defer is.mu.Unlock()
	is.login = &c
}

// Tamper lets a test change the claims of the next ID tokens the token
// endpoint issues (a wrong nonce, another audience); nil stops it.
func (is *Issuer) Tamper(f func(*Claims)) {
	is.mu.Lock()
	defer is.mu.Unlock()
	is.tamper = f
}

func (is *Issuer) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	redirect, err := url.Parse(q.Get("redirect_uri"))
	if err != nil || !redirect.IsAbs() {
		http.Error(w, "bad redirect_uri", http.StatusBadRequest)
		return
	}
	fail := func(code string) {
		v := redirect.Query()
		v.Set("error", code)
		v.Set("state", q.Get("state"))
		redirect.RawQuery = v.Encode()
		http.Redirect(w, r, redirect.String(), http.StatusFound)
	}
	if q.Get("response_type") != "code" || q.Get("client_id") == "" || q.Get("code_challenge_method") != "S256" ||
		q.Get("code_challenge") == "" || q.Get("state") == "" || q.Get("nonce") == "" {
		fail("invalid_request")
		return
	}
	is.mu.Lock()
	login := is.login
	is.mu.Unlock()
	if login == nil {
		fail("access_denied")
		return
	}
	c := *login
	c.Nonce = q.Get("nonce")
	c.Audience = q.Get("client_id")
	code := rand.Text()
	is.mu.Lock()
	if is.codes == nil {
		is.codes = map[string]authCode{}
	}
	is.codes[code] = authCode{claims: c, clientID: q.Get("client_id"), redirectURI: q.Get("redirect_uri"), challenge: q.Get("code_challenge")}
	is.mu.Unlock()
	v := redirect.Query()
	v.Set("code", code)
	v.Set("state", q.Get("state"))
	redirect.RawQuery = v.Encode()
	http.Redirect(w, r, redirect.String(), http.StatusFound)
}

func (is *Issuer) token(w http.ResponseWriter, r *http.Request) {
	oauthErr := func(code string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		json.NewEncoder(w).Encode(map[string]string{"error": code})
	}
	if r.Method != http.MethodPost || r.ParseForm() != nil || r.PostForm.Get("grant_type") != "authorization_code" {
		oauthErr("invalid_request")
		return
	}
	clientID, _, ok := r.BasicAuth()
	if !ok {
		clientID = r.PostForm.Get("client_id")
	}
	is.mu.Lock()
	ac, found := is.codes[r.PostForm.Get("code")]
	delete(is.codes, r.PostForm.Get("code"))
	tamper := is.tamper
	is.mu.Unlock()
	sum := sha256.Sum256([]byte(r.PostForm.Get("code_verifier")))
	switch {
	case !found, ac.clientID != clientID, ac.redirectURI != r.PostForm.Get("redirect_uri"):
		oauthErr("invalid_grant")
		return
	case b64(sum[:]) != ac.challenge:
		oauthErr("invalid_grant")
		return
	}
	c := ac.claims
	if tamper != nil {
		tamper(&c)
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{
		"access_token": rand.Text(), "token_type": "Bearer", "expires_in": 3600,
		"id_token": is.Token(nopTB{}, c),
	})
}

// nopTB lets the handler sign with Token; signing with a valid key does
// not fail.
type nopTB struct{ testing.TB }

func (nopTB) Helper()           {}
func (nopTB) Fatal(args ...any) { panic(args) }
