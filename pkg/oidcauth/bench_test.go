package oidcauth

import (
	"context"
	"testing"
)

// BenchmarkAuthenticate measures one verification with a warm key cache, the
// cost CreateDelegation pays per call.
func BenchmarkAuthenticate(b *testing.B) {
	clock := newFakeClock()
	keys := []testKey{newRSAKey(b, "rsa-1", 0), newECKey(b, "ec-1"), newEdKey(b, "ed-1")}
	ti := newTestIssuer(b, keys...)
	a := newAuth(b, ti.config(clock))
	if err := a.Prefetch(context.Background()); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	for _, k := range keys {
		token := sign(b, k, ti.claims(clock.Now()))
		b.Run(k.alg, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := a.Authenticate(ctx, token); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(k.alg+"/parallel", func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := a.Authenticate(ctx, token); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
	b.Run("refused/unknown_issuer", func(b *testing.B) {
		c := ti.claims(clock.Now())
		c["iss"] = "https://evil.example.com"
		token := sign(b, keys[1], c)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := a.Authenticate(ctx, token); ReasonOf(err) != ReasonUnknownIssuer {
				b.Fatal(err)
			}
		}
	})
	if got := ti.hits(); got != 2 {
		b.Errorf("issuer requests = %d, want 2 (warm cache)", got)
	}
}
