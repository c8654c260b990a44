package harness

import (
	"errors"
	"html/template"
	"net"
	"net/http"
	"net/url"
	"testing"
	"time"
)

// WebUser is a user of the login app: what she types and what her ID
// token says.
type WebUser struct {
	Password string
	// Email becomes the verified email claim; Groups the groups claim.
	Email  string
	Groups []string
}

// loginApp is Hydra's login and consent app as deployments run one: web
// pages a browser fills in. The login page takes a username and password
// and accepts Hydra's login request for that subject; the consent page
// names the client and the scopes and has Allow and Deny buttons.
type loginApp struct {
	users map[string]WebUser
	hydra *Hydra // set once Hydra runs; requests come after
	srv   *http.Server
	url   string
}

var loginPage = template.Must(template.New("login").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sign in · test IdP</title></head>
<body><main>
<h1>Sign in</h1>
{{if .Error}}<p role="alert" id="error">{{.Error}}</p>{{end}}
<form method="post" action="/login">
<input type="hidden" name="challenge" value="{{.Challenge}}">
<p><label for="username">Username</label> <input id="username" name="username" autocomplete="username" required></p>
<p><label for="password">Password</label> <input id="password" name="password" type="password" autocomplete="current-password" required></p>
<p><button id="signin" type="submit">Sign in</button></p>
</form></main></body></html>`))

var consentPage = template.Must(template.New("consent").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Allow access · test IdP</title></head>
<body><main>
<h1>{{.Client}} asks to know who you are</h1>
<p>Scopes: {{range .Scopes}}<code>{{.}}</code> {{end}}</p>
<form method="post" action="/consent">
<input type="hidden" name="challenge" value="{{.Challenge}}">
<button id="allow" name="decision" value="allow" type="submit">Allow</button>
<button id="deny" name="decision" value="deny" type="submit">Deny</button>
</form></main></body></html>`))

func startLoginApp(t testing.TB, users map[string]WebUser) *loginApp {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("harness: login app: %v", err)
	}
	a := &loginApp{users: users, url: "http://" + l.Addr().String()}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /login", a.loginForm)
	mux.HandleFunc("POST /login", a.login)
	mux.HandleFunc("GET /consent", a.consentForm)
	mux.HandleFunc("POST /consent", a.consent)
	a.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go a.srv.Serve(l)
	t.Cleanup(func() { a.srv.Close() })
	return a
}

func (a *loginApp) loginForm(w http.ResponseWriter, r *http.Request) {
	c := r.URL.Query().Get("login_challenge")
	if c == "" {
		http.Error(w, "no login_challenge", http.StatusBadRequest)
		return
	}
	loginPage.Execute(w, map[string]string{"Challenge": c})
}

func (a *loginApp) login(w http.ResponseWriter, r *http.Request) {
	c, name, pw := r.PostFormValue("challenge"), r.PostFormValue("username"), r.PostFormValue("password")
	u, ok := a.users[name]
	if !ok || u.Password != pw {
		w.WriteHeader(http.StatusUnauthorized)
		loginPage.Execute(w, map[string]string{"Challenge": c, "Error": "Wrong username or password."})
		return
	}
	var accepted struct {
		RedirectTo string `json:"redirect_to"`
	}
	if err := a.hydra.admin(http.MethodPut, "/admin/oauth2/auth/requests/login/accept?login_challenge="+url.QueryEscape(c),
		map[string]any{"subject": name}, &accepted); err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	http.Redirect(w, r, accepted.RedirectTo, http.StatusFound)
}

// consentRequest is the part of Hydra's consent request the app reads.
type consentRequest struct {
	Subject           string   `json:"subject"`
	RequestedScope    []string `json:"requested_scope"`
	RequestedAudience []string `json:"requested_access_token_audience"`
	Client            struct {
		ClientID string `json:"client_id"`
	} `json:"client"`
}

func (a *loginApp) consentRequest(c string) (consentRequest, error) {
	var cr consentRequest
	if c == "" {
		return cr, errors.New("no consent challenge")
	}
	err := a.hydra.admin(http.MethodGet, "/admin/oauth2/auth/requests/consent?consent_challenge="+url.QueryEscape(c), nil, &cr)
	return cr, err
}

func (a *loginApp) consentForm(w http.ResponseWriter, r *http.Request) {
	c := r.URL.Query().Get("consent_challenge")
	cr, err := a.consentRequest(c)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	consentPage.Execute(w, map[string]any{"Challenge": c, "Client": cr.Client.ClientID, "Scopes": cr.RequestedScope})
}

func (a *loginApp) consent(w http.ResponseWriter, r *http.Request) {
	c := r.PostFormValue("challenge")
	cr, err := a.consentRequest(c)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	q := "?consent_challenge=" + url.QueryEscape(c)
	var accepted struct {
		RedirectTo string `json:"redirect_to"`
	}
	if r.PostFormValue("decision") != "allow" {
		err = a.hydra.admin(http.MethodPut, "/admin/oauth2/auth/requests/consent/reject"+q,
			map[string]any{"error": "access_denied", "error_description": "the user said no"}, &accepted)
	} else {
		u := a.users[cr.Subject]
		claims := map[string]any{"email": u.Email, "email_verified": u.Email != ""}
		if u.Groups != nil {
			claims["groups"] = u.Groups
		}
		err = a.hydra.admin(http.MethodPut, "/admin/oauth2/auth/requests/consent/accept"+q, map[string]any{
			"grant_scope": cr.RequestedScope, "grant_access_token_audience": cr.RequestedAudience,
			"session": map[string]any{"id_token": claims},
		}, &accepted)
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	http.Redirect(w, r, accepted.RedirectTo, http.StatusFound)
}

// WebClient registers a confidential OAuth2 client for a web application
// that signs users in with the authorization code flow (PKCE accepted) and
// returns its secret.
func (h *Hydra) WebClient(t testing.TB, id, redirectURI string) string {
	t.Helper()
	secret := randomHex(24)
	h.WebClientWithSecret(t, id, secret, redirectURI)
	return secret
}

// WebClientWithSecret is WebClient with a secret the caller chose (one a
// program already read from a file).
func (h *Hydra) WebClientWithSecret(t testing.TB, id, secret, redirectURI string) {
	t.Helper()
	err := h.admin(http.MethodPost, "/admin/clients", map[string]any{
		"client_id":                  id,
		"client_secret":              secret,
		"grant_types":                []string{"authorization_code"},
		"response_types":             []string{"code"},
		"scope":                      "openid profile email",
		"redirect_uris":              []string{redirectURI},
		"token_endpoint_auth_method": "client_secret_basic",
	}, nil)
	if err != nil {
		t.Fatalf("harness: create hydra client %s: %v", id, err)
	}
}
