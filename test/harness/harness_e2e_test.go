//go:build e2e

package harness_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
	"github.com/spiffe/spire-api-sdk/proto/spire/api/types"

	"github.com/agentid/agentid/test/harness"
)

const propagationTimeout = 15 * time.Second

// TestBinaries builds (or finds up to date) every program, so the time a
// cold build takes is reported apart from the tests that use them.
func TestBinaries(t *testing.T) {
	start := time.Now()
	bins := harness.Binaries(t)
	t.Logf("timing: binaries ready in %s", time.Since(start).Round(time.Millisecond))
	for name, path := range map[string]string{
		"spire-server": bins.SPIREServer, "spire-agent": bins.SPIREAgent,
		"oidc-discovery-provider": bins.OIDCDiscovery, "hydra": bins.Hydra,
	} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if fi.Mode().Perm()&0o100 == 0 {
			t.Fatalf("%s: %s is not executable", name, path)
		}
	}
}

// TestSPIRE runs server, agent (unix attestor plus an external one),
// external composer and discovery provider, and checks the SVIDs a workload
// (this test process) gets from them.
func TestSPIRE(t *testing.T) {
	t.Parallel()
	plugin := harness.BuildProgram(t, "./test/harness/internal/testplugin")

	start := time.Now()
	srv := harness.StartSPIREServer(t, harness.ServerOptions{
		CredentialComposer: &harness.ExternalPlugin{
			Name: "harnesstest", Cmd: plugin, Args: []string{"composer"},
			Data: `marker = "from-composer"`,
		},
	})
	t.Logf("timing: spire-server healthy in %s", time.Since(start).Round(time.Millisecond))

	start = time.Now()
	agent := harness.StartSPIREAgent(t, srv, harness.AgentOptions{
		WorkloadAttestor: &harness.ExternalPlugin{
			Name: "harnesstest", Cmd: plugin, Args: []string{"attestor"},
			Data: `marker = "from-attestor"`,
		},
	})
	t.Logf("timing: spire-agent serving in %s", time.Since(start).Round(time.Millisecond))

	start = time.Now()
	disc := harness.StartOIDCDiscovery(t, srv)
	t.Logf("timing: oidc-discovery-provider serving keys in %s", time.Since(start).Round(time.Millisecond))

	// Both selectors are required: the SVID proves the external attestor
	// ran with its plugin_data.
	id := spiffeid.RequireFromPath(srv.TrustDomain(), "/harness/workload")
	start = time.Now()
	entryID := srv.CreateEntry(t, harness.Entry{
		SPIFFEID: id,
		ParentID: agent.ID(),
		Selectors: []string{
			fmt.Sprintf("unix:uid:%d", os.Getuid()),
			"harnesstest:marker:from-attestor",
		},
		JWTSVIDTTL: 2 * time.Minute,
	})
	svid := agent.WaitForX509SVID(t, id, propagationTimeout)
	t.Logf("timing: entry reached the workload in %s", time.Since(start).Round(time.Millisecond))
	if svid.ID != id {
		t.Fatalf("X509-SVID for %s, want %s", svid.ID, id)
	}
	if !slices.ContainsFunc(srv.Entries(t), func(e *types.Entry) bool { return e.Id == entryID }) {
		t.Fatalf("entry %s not listed", entryID)
	}

	const aud = "spiffe://example.org/svc/harness"
	token := fetchJWT(t, agent, id, aud)

	keys := fetchJWKS(t, disc.JWKSURL())
	claims := verifyJWT(t, token, keys)
	if claims.Subject != id.String() {
		t.Fatalf("sub %q, want %q", claims.Subject, id)
	}
	if !slices.Equal([]string(claims.Audience), []string{aud}) {
		t.Fatalf("aud %q, want [%q]", claims.Audience, aud)
	}
	if claims.Issuer != srv.JWTIssuer() {
		t.Fatalf("iss %q, want %q", claims.Issuer, srv.JWTIssuer())
	}
	if claims.Marker != "from-composer" {
		t.Fatalf("harness_marker %q, want %q: composer not applied", claims.Marker, "from-composer")
	}
	if ttl := claims.Expiry.Time().Sub(claims.IssuedAt.Time()); ttl != 2*time.Minute {
		t.Fatalf("JWT-SVID lifetime %s, want the entry's 2m", ttl)
	}

	// The same token naming another subject must not verify.
	parts := strings.Split(token, ".")
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	other := strings.Replace(string(payload), "/harness/workload", "/harness/intruder", 1)
	forged := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(other)) + "." + parts[2]
	if _, err := verifyJWTErr(forged, keys); !errors.Is(err, jose.ErrCryptoFailure) {
		t.Fatalf("forged JWT-SVID: err %v, want a signature verification error", err)
	}

	// The issuer's discovery document leads a generic OIDC verifier to the
	// same keys.
	ctx := context.Background()
	provider, err := oidc.NewProvider(ctx, disc.Issuer())
	if err != nil {
		t.Fatalf("discovery of %s: %v", disc.Issuer(), err)
	}
	if _, err := provider.Verifier(&oidc.Config{ClientID: aud}).Verify(ctx, token); err != nil {
		t.Fatalf("go-oidc verify of JWT-SVID: %v", err)
	}

	// Restarting the server keeps its CA and entries (disk key manager,
	// sqlite): the agent goes on issuing.
	start = time.Now()
	srv.Restart(t)
	t.Logf("timing: spire-server restarted in %s", time.Since(start).Round(time.Millisecond))
	start = time.Now()
	token = fetchJWT(t, agent, id, aud+"/after-restart")
	t.Logf("timing: first JWT-SVID after restart in %s", time.Since(start).Round(time.Millisecond))
	if got := verifyJWT(t, token, keys); got.Subject != id.String() {
		t.Fatalf("after restart: sub %q, want %q", got.Subject, id)
	}

	// A crashed agent comes back with the SVID in its data directory (the
	// join token was single use) and serves the workload again.
	agent.Kill(t)
	start = time.Now()
	agent.Start(t)
	svid = agent.WaitForX509SVID(t, id, propagationTimeout)
	t.Logf("timing: killed agent serving the workload again in %s", time.Since(start).Round(time.Millisecond))
	if svid.ID != id {
		t.Fatalf("after agent restart: X509-SVID for %s, want %s", svid.ID, id)
	}
}

type svidClaims struct {
	jwt.Claims
	Marker string `json:"harness_marker"`
}

// fetchJWT asks the agent for a JWT-SVID, retrying while the agent
// reconnects to a restarted server.
func fetchJWT(t *testing.T, agent *harness.SPIREAgent, id spiffeid.ID, aud string) string {
	t.Helper()
	deadline := time.Now().Add(propagationTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		s, err := workloadapi.FetchJWTSVID(ctx, jwtsvid.Params{Audience: aud, Subject: id}, workloadapi.WithAddr(agent.WorkloadAddr()))
		cancel()
		if err == nil {
			return s.Marshal()
		}
		if time.Now().After(deadline) {
			t.Fatalf("fetch JWT-SVID for %s: %v", id, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func fetchJWKS(t *testing.T, u string) jose.JSONWebKeySet {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s %v", u, resp.Status, err)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(b, &set); err != nil {
		t.Fatalf("JWKS: %v", err)
	}
	return set
}

func verifyJWT(t *testing.T, token string, keys jose.JSONWebKeySet) svidClaims {
	t.Helper()
	c, err := verifyJWTErr(token, keys)
	if err != nil {
		t.Fatalf("verify JWT-SVID: %v", err)
	}
	return c
}

func verifyJWTErr(token string, keys jose.JSONWebKeySet) (svidClaims, error) {
	var c svidClaims
	tok, err := jwt.ParseSigned(token, []jose.SignatureAlgorithm{jose.ES256, jose.ES384, jose.RS256, jose.PS256})
	if err != nil {
		return c, err
	}
	if len(tok.Headers) != 1 {
		return c, fmt.Errorf("%d signatures", len(tok.Headers))
	}
	k := keys.Key(tok.Headers[0].KeyID)
	if len(k) != 1 {
		return c, fmt.Errorf("kid %q: %d keys in the JWKS", tok.Headers[0].KeyID, len(k))
	}
	if err := tok.Claims(k[0].Key, &c); err != nil {
		return c, err
	}
	return c, c.Claims.ValidateWithLeeway(jwt.Expected{Time: time.Now()}, 0)
}

// TestHydra logs users in through Hydra's real authorization-code flow and
// verifies the ID tokens against Hydra's discovery, for each signing
// algorithm the harness offers.
func TestHydra(t *testing.T) {
	t.Parallel()
	for _, alg := range []string{"RS256", "ES256"} {
		t.Run(alg, func(t *testing.T) {
			t.Parallel()
			testHydra(t, alg)
		})
	}
}

func testHydra(t *testing.T, alg string) {
	start := time.Now()
	h := harness.StartHydra(t, harness.HydraOptions{SigningAlg: alg})
	t.Logf("timing: hydra serving discovery in %s", time.Since(start).Round(time.Millisecond))

	start = time.Now()
	raw := h.Login(t, harness.LoginOptions{
		Subject: "alice",
		Email:   "alice@example.com",
		Groups:  []string{"marketing", "eu"},
	})
	t.Logf("timing: login flow in %s", time.Since(start).Round(time.Millisecond))

	tok, err := jwt.ParseSigned(raw, []jose.SignatureAlgorithm{jose.SignatureAlgorithm(alg)})
	if err != nil {
		t.Fatalf("ID token is not signed with %s: %v", alg, err)
	}
	// The harness's imported key signed it, not one Hydra made itself.
	if h := tok.Headers[0]; h.Algorithm != alg || !strings.HasPrefix(h.KeyID, "harness-") {
		t.Fatalf("alg %q kid %q, want %q and the harness's key", h.Algorithm, h.KeyID, alg)
	}

	ctx := context.Background()
	provider, err := oidc.NewProvider(ctx, h.IssuerURL())
	if err != nil {
		t.Fatalf("discovery of %s: %v", h.IssuerURL(), err)
	}
	idt, err := provider.Verifier(&oidc.Config{ClientID: harness.DefaultClientID}).Verify(ctx, raw)
	if err != nil {
		t.Fatalf("verify ID token: %v", err)
	}
	var claims struct {
		Email         string   `json:"email"`
		EmailVerified bool     `json:"email_verified"`
		Groups        []string `json:"groups"`
	}
	if err := idt.Claims(&claims); err != nil {
		t.Fatal(err)
	}
	if idt.Subject != "alice" || idt.Issuer != h.IssuerURL() {
		t.Fatalf("sub %q iss %q, want alice %q", idt.Subject, idt.Issuer, h.IssuerURL())
	}
	if claims.Email != "alice@example.com" || !claims.EmailVerified || !slices.Equal(claims.Groups, []string{"marketing", "eu"}) {
		t.Fatalf("claims %+v", claims)
	}

	// The ID token's audience is the client: another client's verifier
	// refuses it.
	if _, err := provider.Verifier(&oidc.Config{ClientID: "someone-else"}).Verify(ctx, raw); err == nil {
		t.Fatal("ID token accepted for another audience")
	}

	// A second user through a second client: subject, audience and an
	// unverified email come out as asked.
	raw = h.Login(t, harness.LoginOptions{Subject: "bob", Email: "bob@example.com", EmailUnverified: true, Audience: "other-app"})
	idt, err = provider.Verifier(&oidc.Config{ClientID: "other-app"}).Verify(ctx, raw)
	if err != nil {
		t.Fatalf("verify bob's ID token: %v", err)
	}
	claims.EmailVerified = true
	if err := idt.Claims(&claims); err != nil {
		t.Fatal(err)
	}
	if idt.Subject != "bob" || claims.EmailVerified {
		t.Fatalf("sub %q email_verified %v, want bob false", idt.Subject, claims.EmailVerified)
	}
}
