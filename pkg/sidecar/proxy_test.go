package sidecar_test

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/agentid/agentid/pkg/server/servertest"
)

func TestProxyUpgradesToMTLSWithDelegatedToken(t *testing.T) {
	f := newFixture(t)
	id := f.delegate(t)
	// The agent tries to smuggle identities: its own Authorization and
	// agentid headers must not reach the upstream.
	r := f.do(t, "GET", f.proxy+"/campaigns?q=1", nil,
		"Host: crm", "X-Agentid-Delegation: "+id, "Authorization: Bearer forged", "X-Agentid-User: mallory",
		"x-agentid-principal: admin", "X-Forwarded-Client-Cert: URI=spiffe://example.org/agent/admin", "X-Other: kept",
		// CGI/WSGI/Rack upstreams read '_' as '-'.
		"X_Agentid_User: mallory", "X_Forwarded_Client_Cert: URI=spiffe://example.org/agent/admin",
		"Proxy_Authorization: Basic forged", "Proxy-Authorization: Basic forged")
	var got seen
	r.decode(t, &got)
	if r.status != 200 {
		t.Fatalf("got %d %s", r.status, r.body)
	}
	if got.Agent != servertest.Orchestrator.String() || got.User != "alice" || got.Scopes != "campaigns:read compliance:check" ||
		len(got.Chain) != 1 || got.Path != "/campaigns?q=1" || got.Other != "kept" || got.Host != f.crm.addr {
		t.Fatalf("upstream saw %+v", got)
	}
	if len(got.Agentid) != 0 || got.XFCC != "" || got.ProxyAuth != "" {
		t.Fatalf("agentid headers reached the upstream: %v, xfcc %q, proxy auth %q", got.Agentid, got.XFCC, got.ProxyAuth)
	}
}

func TestProxyAsHTTPProxy(t *testing.T) {
	f := newFixture(t)
	id := f.delegate(t)
	pu, _ := url.Parse(f.proxy)
	client := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(pu)}, Timeout: 10 * time.Second}
	req, _ := http.NewRequest("GET", "http://crm.example.org/x", nil)
	req.Header.Set("X-Agentid-Delegation", id)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"user":"alice"`) {
		t.Fatalf("got %d %s", resp.StatusCode, body)
	}
}

func TestProxyRefuses(t *testing.T) {
	f := newFixture(t)
	id := f.delegate(t)
	revoked := f.delegate(t)
	if r := f.do(t, "DELETE", f.api+"/v1/delegations/"+revoked, nil); r.status != 200 {
		t.Fatalf("revoke: %d %s", r.status, r.body)
	}
	unknown := "dlg_01jd0000000000000000000000"
	tests := []struct {
		name          string
		method        string
		headers       []string
		down          bool
		status        int
		code, message string
	}{
		{"unknown route", "GET", []string{"Host: nowhere", "X-Agentid-Delegation: " + id}, false, 502, "unknown_route",
			`sidecar: no route for host "nowhere"`},
		{"unknown delegation", "GET", []string{"Host: crm", "X-Agentid-Delegation: " + unknown}, false, 403, "delegation_denied",
			"agentclient: fetch token under " + unknown + ": agentclient: delegation denied: composer: unknown delegation: " + unknown},
		{"revoked delegation", "GET", []string{"Host: crm", "X-Agentid-Delegation: " + revoked}, false, 403, "delegation_denied",
			"agentclient: fetch token under " + revoked + ": agentclient: delegation denied: composer: delegation is revoked: " + revoked},
		{"malformed delegation", "GET", []string{"Host: crm", "X-Agentid-Delegation: alice"}, false, 400, "invalid_request",
			"sidecar: X-Agentid-Delegation: delegation: invalid delegation id: length 5, want 30"},
		{"two delegations", "GET", []string{"Host: crm", "X-Agentid-Delegation: " + id, "X-Agentid-Delegation: " + id}, false, 400, "invalid_request",
			"sidecar: more than one X-Agentid-Delegation header"},
		{"SPIRE down", "GET", []string{"Host: crm", "X-Agentid-Delegation: " + unknown}, true, 503, "spire_unavailable", ""},
		{"upstream with the wrong SPIFFE ID", "GET", []string{"Host: impostor", "X-Agentid-Delegation: " + id}, false, 502, "upstream_identity_mismatch",
			`sidecar: upstream of route "impostor" did not present spiffe://example.org/svc/crm`},
		{"browser origin", "GET", []string{"Host: crm", "X-Agentid-Delegation: " + id, "Origin: https://evil.example"}, false, 403, "browser_request_refused",
			"sidecar: requests with an Origin header are refused"},
		{"upstream down", "GET", []string{"Host: down", "X-Agentid-Delegation: " + id}, false, 502, "upstream_error", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f.auth.SetServerDown(tt.down)
			defer f.auth.SetServerDown(false)
			before := f.crm.hits.Load()
			r := f.do(t, tt.method, f.proxy+"/x", nil, tt.headers...)
			e := r.errorBody(t)
			if r.status != tt.status || e.Error != tt.code || (tt.message != "" && e.Message != tt.message) {
				t.Fatalf("got %d %s\nwant %d %s %s", r.status, r.body, tt.status, tt.code, tt.message)
			}
			if f.crm.hits.Load() != before || f.impostor.hits.Load() != 0 {
				t.Fatal("a refused request reached an upstream")
			}
		})
	}
}

func TestProxyWithoutDelegationSendsNoToken(t *testing.T) {
	f := newFixture(t)
	// The upstream requires a delegated token: the agent acting for itself
	// is refused by the upstream, not by the proxy, and the agent's forged
	// Authorization never arrives.
	r := f.do(t, "GET", f.proxy+"/x", nil, "Host: crm", "Authorization: Bearer forged")
	if r.status != http.StatusUnauthorized || !strings.Contains(string(r.body), `"error_description":"verify: no token"`) {
		t.Fatalf("got %d %s", r.status, r.body)
	}
}

func TestProxyRefusesConnect(t *testing.T) {
	f := newFixture(t)
	r := f.do(t, "CONNECT", f.proxy, nil, "Host: crm:443")
	if e := r.errorBody(t); r.status != http.StatusMethodNotAllowed || e.Error != "connect_unsupported" {
		t.Fatalf("got %d %s", r.status, r.body)
	}
}
