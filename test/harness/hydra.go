package harness

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// DefaultClientID is the OAuth2 client, and so the ID token audience, that
// Login uses when LoginOptions.Audience is empty.
const DefaultClientID = "agentid-test"

// HydraOptions configures StartHydra. The zero value is fine.
type HydraOptions struct {
	// IDTokenTTL is ttl.id_token; zero keeps Hydra's one hour.
	IDTokenTTL time.Duration
	// SigningAlg is the ID token signature algorithm: "RS256" (default,
	// what most providers use) or "ES256". The harness makes the key
	// (RSA 2048 or P-256) and imports it through the admin API before the
	// first request: left to itself Hydra generates an RSA 4096 key on
	// first use, which takes 1 to 10 s on a busy 2-core machine.
	SigningAlg string
	// LogLevel is Hydra's log.level; empty keeps "debug" (with sensitive
	// values, for diagnosing a failed test). Benchmarks set "error" so that
	// Hydra is measured as it would be run, not writing a line per request.
	LogLevel string
	// Users, when set, makes Hydra's login and consent URLs a web app the
	// harness serves (loginapp.go), for a real browser: a sign-in form
	// checking these users' passwords, then a consent page with Allow and
	// Deny buttons. Unset, the URLs point nowhere and only Login signs in.
	Users map[string]WebUser
}

// idTokenKeySet is the JWK set Hydra signs ID tokens with.
const idTokenKeySet = "hydra.openid.id-token"

// Hydra is a running Ory Hydra v2.3.0 OpenID provider with an in-memory
// store, public and admin APIs on loopback. Login drives its
// authorization-code flow the way a login and consent app would, so the ID
// tokens it returns are real ones, signed with Hydra's keys and published
// in its JWKS.
type Hydra struct {
	proc      *process
	publicURL string
	adminURL  string

	mu      sync.Mutex
	clients map[string]string // client id → secret
}

// StartHydra starts `hydra serve all --dev` (the flag allows an http
// issuer) with DSN=memory and waits until its discovery document is
// served.
func StartHydra(t testing.TB, opts HydraOptions) *Hydra {
	t.Helper()
	if opts.SigningAlg == "" {
		opts.SigningAlg = "RS256"
	}
	signingKey, err := newSigningKey(opts.SigningAlg)
	if err != nil {
		t.Fatal(err)
	}
	bin := tool(t, toolHydra, "hydra")
	dir := t.TempDir()
	h := &Hydra{clients: map[string]string{}}
	loginURL, consentURL := "http://127.0.0.1:1/login", "http://127.0.0.1:1/consent"
	if opts.Users != nil {
		app := startLoginApp(t, opts.Users)
		app.hydra = h
		loginURL, consentURL = app.url+"/login", app.url+"/consent"
	}
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		t.Fatalf("harness: hydra secret: %v", err)
	}
	// Started again on new ports when it lost one of its two.
	startOnPorts(t, 2, func(ports []int) (*process, error) {
		publicPort, adminPort := ports[0], ports[1]
		h.publicURL = fmt.Sprintf("http://127.0.0.1:%d", publicPort)
		h.adminURL = fmt.Sprintf("http://127.0.0.1:%d", adminPort)
		// JSON is YAML: every string below is quoted safely.
		conf := map[string]any{
			"dsn": "memory",
			"serve": map[string]any{
				"public": map[string]any{"host": "127.0.0.1", "port": publicPort},
				"admin":  map[string]any{"host": "127.0.0.1", "port": adminPort},
			},
			"urls": map[string]any{
				"self": map[string]any{"issuer": h.publicURL},
				// Without Users, never fetched: Login reads the challenge
				// off the redirect.
				"login":   loginURL,
				"consent": consentURL,
			},
			"secrets": map[string]any{"system": []string{hex.EncodeToString(secret)}},
			"log":     logConfig(opts.LogLevel),
			"oauth2":  map[string]any{"expose_internal_errors": true},
		}
		if opts.IDTokenTTL > 0 {
			conf["ttl"] = map[string]any{"id_token": opts.IDTokenTTL.String()}
		}
		raw, err := json.MarshalIndent(conf, "", "  ")
		if err != nil {
			t.Fatalf("harness: hydra config: %v", err)
		}
		confPath := filepath.Join(dir, "hydra.yaml")
		if err := os.WriteFile(confPath, raw, 0o600); err != nil {
			t.Fatalf("harness: write hydra config: %v", err)
		}
		if h.proc == nil {
			h.proc = newProcess(t, "hydra", bin, dir, dir, "serve", "all", "--dev", "--sqa-opt-out", "-c", confPath)
		}
		h.proc.start(t)
		if err := awaitReady(h.proc, "hydra admin API", startTimeout, func() error {
			return get(h.adminURL+"/health/ready", time.Second)
		}); err != nil {
			return h.proc, err
		}
		// The public port bound too; a connection asks Hydra for nothing.
		return h.proc, awaitReady(h.proc, "hydra public port", startTimeout, func() error {
			c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", publicPort), time.Second)
			if err != nil {
				return err
			}
			return c.Close()
		})
	})
	// Before anything asks for the keys, or Hydra makes its own.
	if err := h.admin(http.MethodPut, "/admin/keys/"+idTokenKeySet, jose.JSONWebKeySet{Keys: []jose.JSONWebKey{signingKey}}, nil); err != nil {
		t.Fatalf("harness: import hydra signing key: %v", err)
	}
	waitReady(t, h.proc, "hydra discovery", startTimeout, func() error {
		return get(h.publicURL+"/.well-known/openid-configuration", startTimeout)
	})
	return h
}

// newSigningKey makes the private JWK Hydra signs ID tokens with.
func logConfig(level string) map[string]any {
	if level == "" {
		return map[string]any{"level": "debug", "leak_sensitive_values": true}
	}
	return map[string]any{"level": level}
}

func newSigningKey(alg string) (jose.JSONWebKey, error) {
	var key any
	var err error
	switch alg {
	case "RS256":
		key, err = rsa.GenerateKey(rand.Reader, 2048)
	case "ES256":
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	default:
		return jose.JSONWebKey{}, fmt.Errorf("harness: hydra signing alg %q: want RS256 or ES256", alg)
	}
	if err != nil {
		return jose.JSONWebKey{}, fmt.Errorf("harness: generate hydra signing key: %w", err)
	}
	return jose.JSONWebKey{Key: key, KeyID: "harness-" + randomHex(8), Algorithm: alg, Use: "sig"}, nil
}

func get(u string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	return nil
}

// IssuerURL is the issuer of Hydra's tokens and the base of its discovery
// document (http://127.0.0.1:<port>, no trailing slash).
func (h *Hydra) IssuerURL() string { return h.publicURL }

// AdminURL is the base URL of Hydra's admin API.
func (h *Hydra) AdminURL() string { return h.adminURL }

// LogPath is the file holding Hydra's output.
func (h *Hydra) LogPath() string { return h.proc.logPath }

// Stop terminates Hydra. Its store is in memory: clients and keys are gone.
func (h *Hydra) Stop(t testing.TB) {
	t.Helper()
	h.proc.stop()
}

// LoginOptions describe the user who logs in.
type LoginOptions struct {
	// Subject is the ID token's "sub"; required.
	Subject string
	// Email, when set, becomes the "email" claim, with "email_verified"
	// true unless EmailUnverified.
	Email           string
	EmailUnverified bool
	// Groups, when set, becomes the "groups" claim.
	Groups []string
	// Audience is the OAuth2 client id, which Hydra makes the ID token's
	// "aud". Default DefaultClientID. The client is created on first use.
	Audience string
	// Claims are more ID token claims. Registered ones (iss, sub, aud,
	// exp, iat, jti, ...) are Hydra's: fosite overwrites them.
	Claims map[string]any
}

// Login runs the authorization-code flow for one user and returns the ID
// token: create (once) the OAuth2 client, GET /oauth2/auth, accept the
// login request with the subject and the consent request with the ID
// token claims through the admin API, follow the redirects with the
// browser's cookies, and exchange the code at /oauth2/token.
func (h *Hydra) Login(t testing.TB, opts LoginOptions) string {
	t.Helper()
	tok, err := h.login(opts)
	if err != nil {
		t.Fatalf("harness: hydra login as %q: %v", opts.Subject, err)
	}
	return tok
}

const redirectURI = "http://127.0.0.1:1/callback"

func (h *Hydra) login(opts LoginOptions) (string, error) {
	if opts.Subject == "" {
		return "", fmt.Errorf("subject is empty")
	}
	clientID := opts.Audience
	if clientID == "" {
		clientID = DefaultClientID
	}
	secret, err := h.client(clientID)
	if err != nil {
		return "", err
	}

	jar, err := cookiejar.New(nil)
	if err != nil {
		return "", err
	}
	// The browser: keeps Hydra's CSRF cookies, stops at every redirect so
	// the challenges and the code can be read off the Location header.
	browser := &http.Client{
		Jar:     jar,
		Timeout: callTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
	state, nonce := randomHex(16), randomHex(16)
	auth := h.publicURL + "/oauth2/auth?" + url.Values{
		"client_id":     {clientID},
		"response_type": {"code"},
		"scope":         {"openid"},
		"redirect_uri":  {redirectURI},
		"state":         {state},
		"nonce":         {nonce},
	}.Encode()

	loc, err := redirect(browser, auth)
	if err != nil {
		return "", fmt.Errorf("start authorization: %w", err)
	}
	loginChallenge := loc.Query().Get("login_challenge")
	if loginChallenge == "" {
		return "", fmt.Errorf("start authorization: redirected to %s, not to login", loc)
	}
	var accepted struct {
		RedirectTo string `json:"redirect_to"`
	}
	if err := h.admin(http.MethodPut, "/admin/oauth2/auth/requests/login/accept?login_challenge="+url.QueryEscape(loginChallenge),
		map[string]any{"subject": opts.Subject}, &accepted); err != nil {
		return "", fmt.Errorf("accept login: %w", err)
	}

	loc, err = redirect(browser, accepted.RedirectTo)
	if err != nil {
		return "", fmt.Errorf("follow login: %w", err)
	}
	consentChallenge := loc.Query().Get("consent_challenge")
	if consentChallenge == "" {
		return "", fmt.Errorf("follow login: redirected to %s, not to consent", loc)
	}
	var consent struct {
		RequestedScope    []string `json:"requested_scope"`
		RequestedAudience []string `json:"requested_access_token_audience"`
	}
	q := "?consent_challenge=" + url.QueryEscape(consentChallenge)
	if err := h.admin(http.MethodGet, "/admin/oauth2/auth/requests/consent"+q, nil, &consent); err != nil {
		return "", fmt.Errorf("get consent request: %w", err)
	}
	idClaims := map[string]any{}
	for k, v := range opts.Claims {
		idClaims[k] = v
	}
	if opts.Email != "" {
		idClaims["email"] = opts.Email
		idClaims["email_verified"] = !opts.EmailUnverified
	}
	if opts.Groups != nil {
		idClaims["groups"] = opts.Groups
	}
	if err := h.admin(http.MethodPut, "/admin/oauth2/auth/requests/consent/accept"+q, map[string]any{
		"grant_scope":                 consent.RequestedScope,
		"grant_access_token_audience": consent.RequestedAudience,
		"session":                     map[string]any{"id_token": idClaims},
	}, &accepted); err != nil {
		return "", fmt.Errorf("accept consent: %w", err)
	}

	loc, err = redirect(browser, accepted.RedirectTo)
	if err != nil {
		return "", fmt.Errorf("follow consent: %w", err)
	}
	if got := loc.Query().Get("state"); got != state {
		return "", fmt.Errorf("callback state %q, want %q (location %s)", got, state, loc)
	}
	code := loc.Query().Get("code")
	if code == "" {
		return "", fmt.Errorf("callback without code: %s", loc)
	}
	return h.exchange(clientID, secret, code)
}

// TokenURL is Hydra's token endpoint.
func (h *Hydra) TokenURL() string { return h.publicURL + "/oauth2/token" }

// ClientCredentialsClient registers a confidential client that may use the
// client_credentials grant (client_secret_basic) for scope, with Hydra's
// defaults otherwise, and returns its secret.
func (h *Hydra) ClientCredentialsClient(t testing.TB, id, scope string) string {
	t.Helper()
	secret := randomHex(24)
	err := h.admin(http.MethodPost, "/admin/clients", map[string]any{
		"client_id":                  id,
		"client_secret":              secret,
		"grant_types":                []string{"client_credentials"},
		"response_types":             []string{},
		"scope":                      scope,
		"token_endpoint_auth_method": "client_secret_basic",
	}, nil)
	if err != nil {
		t.Fatalf("harness: create hydra client %s: %v", id, err)
	}
	return secret
}

// client creates the OAuth2 client id once per Hydra and returns its
// secret.
func (h *Hydra) client(id string) (string, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if s, ok := h.clients[id]; ok {
		return s, nil
	}
	secret := randomHex(24)
	err := h.admin(http.MethodPost, "/admin/clients", map[string]any{
		"client_id":                  id,
		"client_secret":              secret,
		"grant_types":                []string{"authorization_code"},
		"response_types":             []string{"code"},
		"scope":                      "openid",
		"redirect_uris":              []string{redirectURI},
		"token_endpoint_auth_method": "client_secret_basic",
	}, nil)
	if err != nil {
		return "", fmt.Errorf("create client %s: %w", id, err)
	}
	h.clients[id] = secret
	return secret, nil
}

func (h *Hydra) exchange(clientID, secret, code string) (string, error) {
	form := url.Values{
		"grant_type":   {"authorization_code"},
		"code":         {code},
		"redirect_uri": {redirectURI},
	}
	req, err := http.NewRequest(http.MethodPost, h.publicURL+"/oauth2/token", strings.NewReader(form.Encode()))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	// RFC 6749 §2.3.1: form-encode both before Basic.
	req.SetBasicAuth(url.QueryEscape(clientID), url.QueryEscape(secret))
	var tok struct {
		IDToken string `json:"id_token"`
	}
	if err := do(req, &tok); err != nil {
		return "", fmt.Errorf("exchange code: %w", err)
	}
	if tok.IDToken == "" {
		return "", fmt.Errorf("exchange code: no id_token in the response")
	}
	return tok.IDToken, nil
}

// admin calls Hydra's admin API with a JSON body and decodes the answer
// into out (when not nil).
func (h *Hydra) admin(method, path string, body, out any) error {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, h.adminURL+path, r)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return do(req, out)
}

func do(req *http.Request, out any) error {
	ctx, cancel := context.WithTimeout(req.Context(), callTimeout)
	defer cancel()
	resp, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %s: %s", req.Method, req.URL.Path, resp.Status, bytes.TrimSpace(b))
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(b, out)
}

// redirect GETs u and returns where it redirects to.
func redirect(browser *http.Client, u string) (*url.URL, error) {
	resp, err := browser.Get(u)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode < 300 || resp.StatusCode > 399 {
		return nil, fmt.Errorf("GET %s: %s, want a redirect: %s", u, resp.Status, bytes.TrimSpace(b))
	}
	loc, err := resp.Location()
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", u, err)
	}
	if e := loc.Query().Get("error"); e != "" {
		return nil, fmt.Errorf("GET %s: redirected with error %s: %s", u, e, loc.Query().Get("error_description"))
	}
	return loc, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("harness: crypto/rand: %v", err))
	}
	return hex.EncodeToString(b)
}
