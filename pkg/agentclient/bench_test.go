package agentclient_test

import (
	"testing"

	"github.com/agentid/agentid/pkg/server/servertest"
)

// BenchmarkTokenWarm is a cache hit: what every request of an agent costs
// once its token is fetched.
func BenchmarkTokenWarm(b *testing.B) {
	f := newFixture(b)
	d := f.delegate(b)
	ctx := servertest.Ctx(b)
	if _, err := f.agent.Tokens().Token(ctx, d.ID, audience); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := f.agent.Tokens().Token(ctx, d.ID, audience); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTokenCold fetches over the (fake) Workload API every time: the
// round trip over the unix socket plus ES256 signing in the fake.
func BenchmarkTokenCold(b *testing.B) {
	f := newFixture(b)
	d := f.delegate(b)
	ctx := servertest.Ctx(b)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		f.agent.Tokens().Forget(d.ID)
		if _, err := f.agent.Tokens().Token(ctx, d.ID, audience); err != nil {
			b.Fatal(err)
		}
	}
}
