package userpage

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/agentid/agentid/pkg/audit"
	"github.com/agentid/agentid/pkg/delegation"
)

// BenchmarkRenderDelegations1000 measures the server time of the
// delegations page for a user with 1,000 delegations (500 roots, each with
// one sub-delegation), read from a real bbolt store: what the handler does
// between the request and the last byte, without TLS or the network. It
// reports p50 and p99; the floor is p99 under 50 ms.
//
//	go test -run '^$' -bench RenderDelegations -benchtime 300x ./pkg/userpage/
func BenchmarkRenderDelegations1000(b *testing.B) {
	e := newEnv(b)
	for range 500 {
		e.delegate(b, "alice")
	}
	b.Run("first-page", func(b *testing.B) { benchPage(b, e, "/delegations") })
	b.Run("first-page-uncached", func(b *testing.B) {
		cold = true
		defer func() { cold = false }()
		benchPage(b, e, "/delegations")
	})
	b.Run("last-page", func(b *testing.B) { benchPage(b, e, "/delegations?page=10") })
	b.Run("filtered", func(b *testing.B) {
		benchPage(b, e, "/delegations?state=active&agent=spiffe%3A%2F%2Fexample.org%2Fagent%2Fmarket-analysis")
	})
}

// cold makes benchPage drop the cached listings before each request.
var cold bool

func benchPage(b *testing.B, e *env, path string) {
	now := e.clock.Now()
	s := &session{ident: identity(b, e, "alice"), csrf: "x", signedIn: now, lastSeen: now}
	cookie, _ := e.page.sessions.create(s)
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		req := httptest.NewRequest(http.MethodGet, path, nil)
		req.AddCookie(&http.Cookie{Name: sessionCookie, Value: cookie})
		w := httptest.NewRecorder()
		if cold { // as after a change: the listing is read and decoded again
			e.page.cacheMu.Lock()
			clear(e.page.cache)
			e.page.cacheMu.Unlock()
		}
		start := time.Now()
		e.page.ServeHTTP(w, req)
		lat = append(lat, time.Since(start))
		if w.Code != http.StatusOK {
			b.Fatalf("%d", w.Code)
		}
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkStory measures a delegation's page (its tree, its story and the
// incremental audit verification) in a log of 1,500 events.
func BenchmarkStory(b *testing.B) {
	e := newEnv(b)
	var root *delegation.Delegation
	for range 500 {
		root, _ = e.delegate(b, "alice")
	}
	if err := e.store.AppendEvents(context.Background(), audit.Event{Time: e.clock.Now(), Type: audit.TypeTokenIssued, Actor: "spire", DelegationID: root.ID.String()}); err != nil {
		b.Fatal(err)
	}
	benchPage(b, e, "/delegations/"+root.ID.String())
}
