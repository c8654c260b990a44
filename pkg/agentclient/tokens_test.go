package agentclient_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentid/agentid/pkg/agentclient"
	"github.com/agentid/agentid/pkg/claims"
	"github.com/agentid/agentid/pkg/delegation"
	"github.com/agentid/agentid/pkg/server/servertest"
	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"
)

func TestTokenCarriesDelegationClaims(t *testing.T) {
	f := newFixture(t)
	d := f.delegate(t)
	tok, err := f.agent.Tokens().Token(servertest.Ctx(t), d.ID, audience)
	if err != nil {
		t.Fatal(err)
	}
	svid, err := jwtsvid.ParseAndValidate(tok.Value, f.auth.JWTBundle(), []string{audience})
	if err != nil {
		t.Fatal(err)
	}
	if len(svid.Audience) != 1 || svid.Audience[0] != audience {
		t.Fatalf("aud = %q, want only %q (marker stripped)", svid.Audience, audience)
	}
	c, err := claims.Decode(svid.Claims, servertest.Orchestrator)
	if err != nil {
		t.Fatal(err)
	}
	if c.ID != d.ID || c.User.Subject() != "alice" || c.Scopes.String() != "campaigns:read compliance:check" {
		t.Fatalf("claims %+v", c)
	}
	if tok.Delegation != d.ID || tok.Audience != audience || !tok.ExpiresAt.Equal(svid.Expiry) {
		t.Fatalf("token %+v", tok)
	}
}

func TestTokenCachedUntilHalfLife(t *testing.T) {
	f := newFixture(t)
	d := f.delegate(t)
	ctx := servertest.Ctx(t)
	first, err := f.agent.Tokens().Token(ctx, d.ID, audience)
	if err != nil {
		t.Fatal(err)
	}
	f.clock.t = first.IssuedAt.Add(2*time.Minute + 29*time.Second) // 5 min TTL: half life at 2m30s
	second, err := f.agent.Tokens().Token(ctx, d.ID, audience)
	if err != nil {
		t.Fatal(err)
	}
	if second.Value != first.Value || f.wl.JWTFetches() != 1 {
		t.Fatalf("before half life: fetches = %d, same token = %v", f.wl.JWTFetches(), second.Value == first.Value)
	}
	f.clock.t = first.IssuedAt.Add(150 * time.Second)
	if _, err := f.agent.Tokens().Token(ctx, d.ID, audience); err != nil {
		t.Fatal(err)
	}
	if f.wl.JWTFetches() != 2 {
		t.Fatalf("at half life: fetches = %d, want 2", f.wl.JWTFetches())
	}
	// Another audience is another token.
	if _, err := f.agent.Tokens().Token(ctx, d.ID, "spiffe://example.org/svc/other"); err != nil {
		t.Fatal(err)
	}
	if f.wl.JWTFetches() != 3 || f.agent.Tokens().Len() != 2 {
		t.Fatalf("fetches = %d, cached = %d", f.wl.JWTFetches(), f.agent.Tokens().Len())
	}
}

func TestTokenConcurrentCallersShareOneFetch(t *testing.T) {
	f := newFixture(t)
	d := f.delegate(t)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := f.agent.Tokens().Token(servertest.Ctx(t), d.ID, audience)
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := f.wl.JWTFetches(); n != 1 {
		t.Fatalf("fetches = %d, want 1", n)
	}
}

func TestTokenErrors(t *testing.T) {
	f := newFixture(t)
	ctx := servertest.Ctx(t)
	revoked := f.delegate(t)
	if _, err := f.server(t).RevokeDelegation(ctx, revoked.ID, "done"); err != nil {
		t.Fatal(err)
	}
	unknown := delegation.MustParseID("dlg_01jd0000000000000000000000")
	tests := []struct {
		name     string
		id       delegation.ID
		audience string
		down     bool
		want     error
		wantText string
	}{
		{"unknown", unknown, audience, false, agentclient.ErrDelegationDenied,
			"agentclient: fetch token under dlg_01jd0000000000000000000000: agentclient: delegation denied: composer: unknown delegation: dlg_01jd0000000000000000000000"},
		{"revoked", revoked.ID, audience, false, agentclient.ErrDelegationDenied,
			"agentclient: fetch token under " + revoked.ID.String() + ": agentclient: delegation denied: composer: delegation is revoked: " + revoked.ID.String()},
		{"server down", unknown, audience, true, agentclient.ErrUnavailable,
			"agentclient: fetch token under dlg_01jd0000000000000000000000: agentclient: SPIRE unavailable or delegation denied without a recognisable reason: " + "could not fetch JWT-SVID: failed to fetch JWT SVID: rpc error: code = Unavailable desc = connection error: desc = \"transport: Error while dialing: dial tcp 127.0.0.1:8081: connect: connection refused\""},
		{"zero id", delegation.ID{}, audience, false, agentclient.ErrInvalidRequest,
			"agentclient: invalid request: delegation id is required"},
		{"empty audience", unknown, "", false, agentclient.ErrInvalidRequest,
			"agentclient: invalid request: audience: must be 1..2048 bytes"},
		{"long audience", unknown, strings.Repeat("a", 2049), false, agentclient.ErrInvalidRequest,
			"agentclient: invalid request: audience: must be 1..2048 bytes"},
		// Malformed audiences are the caller's error, never a fetch: a
		// marker one reached SPIRE, whose refusal read as unavailable (503).
		{"marker audience", unknown, claims.Marker(unknown), false, agentclient.ErrInvalidRequest,
			"agentclient: invalid request: audience: is a delegation marker (urn:agentid:delegation:…); name the delegation by its id instead"},
		{"audience with a space", unknown, "spiffe://example.org/svc/crm x", false, agentclient.ErrInvalidRequest,
			"agentclient: invalid request: audience: has a space or control character at byte 28"},
		{"audience with a newline", unknown, "crm\n", false, agentclient.ErrInvalidRequest,
			"agentclient: invalid request: audience: has a space or control character at byte 3"},
		{"audience with NUL", unknown, "crm\x00", false, agentclient.ErrInvalidRequest,
			"agentclient: invalid request: audience: has a space or control character at byte 3"},
		{"audience not UTF-8", unknown, "crm\xff", false, agentclient.ErrInvalidRequest,
			"agentclient: invalid request: audience: is not valid UTF-8"},
		{"audience with ':' not a URI", unknown, "127.0.0.1:8443", false, agentclient.ErrInvalidRequest,
			"agentclient: invalid request: audience: has a ':' but is not an absolute URI, like spiffe://example.org/svc/crm or https://crm.example.org"},
		{"audience with a scheme and no ':'", unknown, "://crm", false, agentclient.ErrInvalidRequest,
			"agentclient: invalid request: audience: has a ':' but is not an absolute URI, like spiffe://example.org/svc/crm or https://crm.example.org"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f.auth.SetServerDown(tt.down)
			defer f.auth.SetServerDown(false)
			fetches := f.wl.JWTFetches()
			_, err := f.agent.Tokens().Token(ctx, tt.id, tt.audience)
			if !errors.Is(err, tt.want) || err.Error() != tt.wantText {
				t.Fatalf("err = %v\nwant %s (%v)", err, tt.wantText, tt.want)
			}
			if errors.Is(tt.want, agentclient.ErrInvalidRequest) && f.wl.JWTFetches() != fetches {
				t.Fatal("an invalid request reached the Workload API")
			}
			if f.agent.Tokens().Len() != 0 {
				t.Fatalf("a failed fetch left %d cached tokens", f.agent.Tokens().Len())
			}
		})
	}
}

func TestTokenForeignDelegationDenied(t *testing.T) {
	f := newFixture(t)
	d := f.delegate(t)
	// The analyst's own Workload API: it may not use the orchestrator's delegation.
	analyst := newAgent(t, f.auth.Serve(t, servertest.Analyst), time.Now)
	_, err := analyst.Tokens().Token(servertest.Ctx(t), d.ID, audience)
	want := "agentclient: fetch token under " + d.ID.String() + ": agentclient: delegation denied: composer: delegation belongs to another agent: " + d.ID.String()
	if !errors.Is(err, agentclient.ErrDelegationDenied) || err.Error() != want {
		t.Fatalf("err = %v\nwant %s", err, want)
	}
}

func TestTokenWorkloadAPIGone(t *testing.T) {
	f := newFixture(t)
	d := f.delegate(t)
	f.wl.Stop()
	ctx, cancel := context.WithTimeout(ctxBG, 2*time.Second)
	defer cancel()
	_, err := f.agent.Tokens().Token(ctx, d.ID, audience)
	if !errors.Is(err, agentclient.ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}
}

func TestTokenFallbackWhileUnavailableButNotAfterDenial(t *testing.T) {
	f := newFixture(t)
	d := f.delegate(t)
	ctx := servertest.Ctx(t)
	first, err := f.agent.Tokens().Token(ctx, d.ID, audience)
	if err != nil {
		t.Fatal(err)
	}
	f.clock.t = first.IssuedAt.Add(3 * time.Minute) // past half life, 2 min left
	f.auth.SetServerDown(true)
	got, err := f.agent.Tokens().Token(ctx, d.ID, audience)
	if err != nil || got.Value != first.Value {
		t.Fatalf("while SPIRE is down: err = %v, same token = %v", err, got.Value == first.Value)
	}
	f.clock.t = first.ExpiresAt.Add(-5 * time.Second) // within the margin: no fallback
	if _, err := f.agent.Tokens().Token(ctx, d.ID, audience); !errors.Is(err, agentclient.ErrUnavailable) {
		t.Fatalf("near expiry: err = %v, want ErrUnavailable", err)
	}
	f.auth.SetServerDown(false)
	f.clock.t = first.IssuedAt
	if _, err := f.agent.Tokens().Token(ctx, d.ID, audience); err != nil {
		t.Fatal(err)
	}
	if _, err := f.server(t).RevokeDelegation(ctx, d.ID, "user left"); err != nil {
		t.Fatal(err)
	}
	f.clock.t = first.IssuedAt.Add(3 * time.Minute)
	if _, err := f.agent.Tokens().Token(ctx, d.ID, audience); !errors.Is(err, agentclient.ErrDelegationDenied) {
		t.Fatalf("after revocation: err = %v, want ErrDelegationDenied", err)
	}
	if f.agent.Tokens().Len() != 0 {
		t.Fatal("a denied delegation's token stayed cached")
	}
}

func TestTokenCacheBounded(t *testing.T) {
	f := newFixture(t)
	d := f.delegate(t)
	tokens, err := agentclient.NewDelegatedTokens(agentclient.TokensConfig{
		Fetcher: fetcherOf(t, f.wl.Addr), ID: servertest.Orchestrator, MaxCachedTokens: 2,
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if _, err := tokens.Token(servertest.Ctx(t), d.ID, audience+string(rune('a'+i))); err != nil {
			t.Fatal(err)
		}
	}
	if tokens.Len() != 2 {
		t.Fatalf("cached %d tokens, want 2", tokens.Len())
	}
	tokens.Forget(d.ID)
	if tokens.Len() != 0 {
		t.Fatalf("Forget left %d tokens", tokens.Len())
	}
}

func TestNewDelegatedTokensValidates(t *testing.T) {
	f := newFixture(t)
	fetcher := fetcherOf(t, f.wl.Addr)
	tests := []struct {
		name   string
		config agentclient.TokensConfig
		want   string
	}{
		{"no fetcher", agentclient.TokensConfig{ID: servertest.Orchestrator}, "agentclient: invalid config: fetcher is required"},
		{"no id", agentclient.TokensConfig{Fetcher: fetcher}, "agentclient: invalid config: the agent's SPIFFE ID is required"},
		{"negative max", agentclient.TokensConfig{Fetcher: fetcher, ID: servertest.Orchestrator, MaxCachedTokens: -1},
			"agentclient: invalid config: max cached tokens -1 is negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := agentclient.NewDelegatedTokens(tt.config)
			if err == nil || err.Error() != tt.want {
				t.Fatalf("err = %v, want %s", err, tt.want)
			}
		})
	}
}

// rewritingFetcher stands for a SPIRE (or composer) that does not issue
// what was asked: it rewrites the request before the fake Workload API
// sees it.
type rewritingFetcher struct {
	inner   agentclient.JWTSVIDFetcher
	rewrite func(*jwtsvid.Params)
}

func (r rewritingFetcher) FetchJWTSVID(ctx context.Context, p jwtsvid.Params) (*jwtsvid.SVID, error) {
	r.rewrite(&p)
	return r.inner.FetchJWTSVID(ctx, p)
}

// A token without the marker is not thereby delegated: it must carry the
// delegation asked for, for exactly the audience asked for.
func TestTokenNotComposedAsAskedRefused(t *testing.T) {
	f := newFixture(t)
	d := f.delegate(t)
	other := f.delegate(t)
	inner := fetcherOf(t, f.wl.Addr)
	prefix := "agentclient: fetch token under " + d.ID.String() + ": agentclient: SPIRE unavailable or delegation denied without a recognisable reason: "
	tests := []struct {
		name    string
		rewrite func(*jwtsvid.Params)
		want    string
	}{
		{"plain token", func(p *jwtsvid.Params) { p.ExtraAudiences = nil },
			prefix + "token carries no valid delegation claims: "},
		{"other delegation", func(p *jwtsvid.Params) { p.ExtraAudiences = []string{claims.Marker(other.ID)} },
			prefix + "token carries delegation " + other.ID.String()},
		{"extra audience", func(p *jwtsvid.Params) { p.ExtraAudiences = append(p.ExtraAudiences, "spiffe://example.org/svc/else") },
			prefix + `token audience is ["` + audience + `" "spiffe://example.org/svc/else"], want ["` + audience + `"]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tokens, err := agentclient.NewDelegatedTokens(agentclient.TokensConfig{
				Fetcher: rewritingFetcher{inner: inner, rewrite: tt.rewrite}, ID: servertest.Orchestrator,
			})
			if err != nil {
				t.Fatal(err)
			}
			_, err = tokens.Token(servertest.Ctx(t), d.ID, audience)
			if !errors.Is(err, agentclient.ErrUnavailable) || !strings.HasPrefix(err.Error(), tt.want) {
				t.Fatalf("err = %v\nwant %s…", err, tt.want)
			}
			if tokens.Len() != 0 {
				t.Fatal("a refused token was cached")
			}
		})
	}
}

// gatedFetcher holds every fetch until released, reporting when one starts.
type gatedFetcher struct {
	inner   agentclient.JWTSVIDFetcher
	entered chan struct{}
	release chan struct{}
}

func newGatedFetcher(inner agentclient.JWTSVIDFetcher) *gatedFetcher {
	return &gatedFetcher{inner: inner, entered: make(chan struct{}, 8), release: make(chan struct{})}
}

func (g *gatedFetcher) FetchJWTSVID(ctx context.Context, p jwtsvid.Params) (*jwtsvid.SVID, error) {
	g.entered <- struct{}{}
	select {
	case <-g.release:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return g.inner.FetchJWTSVID(ctx, p)
}

// One caller giving up does not fail the others sharing its fetch.
func TestTokenSharedFetchOutlivesFirstCaller(t *testing.T) {
	f := newFixture(t)
	d := f.delegate(t)
	g := newGatedFetcher(fetcherOf(t, f.wl.Addr))
	tokens, err := agentclient.NewDelegatedTokens(agentclient.TokensConfig{Fetcher: g, ID: servertest.Orchestrator})
	if err != nil {
		t.Fatal(err)
	}
	first, cancel := context.WithCancel(servertest.Ctx(t))
	firstErr := make(chan error, 1)
	go func() {
		_, err := tokens.Token(first, d.ID, audience)
		firstErr <- err
	}()
	<-g.entered
	second := make(chan error, 1)
	go func() {
		_, err := tokens.Token(servertest.Ctx(t), d.ID, audience)
		second <- err
	}()
	cancel()
	if err := <-firstErr; !errors.Is(err, agentclient.ErrUnavailable) || !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled caller: err = %v", err)
	}
	close(g.release)
	if err := <-second; err != nil {
		t.Fatalf("the other caller failed with the first one's cancellation: %v", err)
	}
	if n := len(g.entered); n != 0 {
		t.Fatalf("%d more fetches started, want the first one shared", n)
	}
}

// A fetch in flight when Forget runs is not cached afterwards.
func TestTokenForgetDuringFetch(t *testing.T) {
	f := newFixture(t)
	d := f.delegate(t)
	g := newGatedFetcher(fetcherOf(t, f.wl.Addr))
	tokens, err := agentclient.NewDelegatedTokens(agentclient.TokensConfig{Fetcher: g, ID: servertest.Orchestrator})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := tokens.Token(servertest.Ctx(t), d.ID, audience)
		done <- err
	}()
	<-g.entered
	tokens.Forget(d.ID)
	close(g.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if tokens.Len() != 0 {
		t.Fatalf("a fetch that raced Forget left %d cached tokens", tokens.Len())
	}
}
