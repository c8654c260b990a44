package oidcauth

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
)

var allReasons = map[Reason]bool{
	ReasonTooLarge: true, ReasonMalformed: true, ReasonBadAlgorithm: true, ReasonUnknownIssuer: true,
	ReasonIssuerUnavailable: true, ReasonUnknownKey: true, ReasonBadSignature: true, ReasonBadClaims: true,
	ReasonExpired: true, ReasonNotYetValid: true, ReasonWrongAudience: true, ReasonEmailNotVerified: true,
}

// fuzzSeeds returns tokens worth mutating: valid ones for each algorithm and
// a few near misses.
func fuzzSeeds(tb testing.TB, ti *testIssuer, keys []testKey) []string {
	tb.Helper()
	var seeds []string
	for _, k := range keys {
		seeds = append(seeds, sign(tb, k, ti.claims(testNow)))
	}
	c := ti.claims(testNow)
	c["groups"] = "one"
	c["aud"] = []string{"x", "cli"}
	c["nbf"] = 1.5
	seeds = append(seeds,
		sign(tb, keys[0], c),
		signWith(tb, map[string]any{"alg": "none"}, ti.claims(testNow), func([]byte) []byte { return nil }),
		signWith(tb, map[string]any{"alg": "HS256", "kid": keys[0].kid}, ti.claims(testNow), hmacSigner([]byte("secret"))),
		"", ".", "..", "a.b.c", "eyJhbGciOiJSUzI1NiJ9.e30.AA",
	)
	return seeds
}

func FuzzParseUnverified(f *testing.F) {
	f.Add("eyJhbGciOiJSUzI1NiIsImtpZCI6ImsifQ.eyJpc3MiOiJodHRwczovL2lkcC5leGFtcGxlLmNvbSJ9.AA")
	f.Add("eyJhbGciOiJub25lIn0.eyJpc3MiOiJ4In0.")
	f.Add("e30.e30.e30")
	f.Add("..")
	f.Fuzz(func(t *testing.T, raw string) {
		u, reason, err := parseUnverified(raw)
		if err != nil {
			if u != nil || !allReasons[reason] {
				t.Fatalf("parseUnverified = %v, %q, %v", u, reason, err)
			}
			if len(raw) >= 4 && strings.Contains(err.Error(), raw) {
				t.Fatalf("error %q echoes the input", err)
			}
			return
		}
		if u.alg != algRS256 && u.alg != algES256 && u.alg != algEdDSA {
			t.Fatalf("accepted alg %q", u.alg)
		}
		if u.iss == "" || u.claims == nil {
			t.Fatalf("accepted a token without iss or claims")
		}
	})
}

var (
	fuzzOnce sync.Once
	fuzzAuth *Authenticator
	fuzzIss  *testIssuer
	fuzzKeys []testKey
)

// FuzzAuthenticate runs the whole verification against an in-process issuer
// whose keys are cached; a refused token must always be a *TokenError with a
// known reason that wraps ErrInvalidToken.
func FuzzAuthenticate(f *testing.F) {
	fuzzOnce.Do(func() {
		fuzzKeys = []testKey{newRSAKey(f, "rsa-1", 0), newECKey(f, "ec-1"), newEdKey(f, "ed-1")}
		// The server lives as long as the fuzzing process.
		fuzzIss = newTestIssuer(&noCleanupTB{f}, fuzzKeys...)
		clock := newFakeClock()
		fuzzAuth = newAuth(f, fuzzIss.config(clock))
		if err := fuzzAuth.Prefetch(context.Background()); err != nil {
			f.Fatal(err)
		}
	})
	for _, s := range fuzzSeeds(f, fuzzIss, fuzzKeys) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		id, err := fuzzAuth.Authenticate(context.Background(), raw)
		if err == nil {
			if id.User.Issuer() != fuzzIss.url || id.User.Subject() == "" || !id.Expiry.After(testNow.Add(-DefaultClockSkew)) {
				t.Fatalf("accepted identity %+v", id)
			}
			return
		}
		var te *TokenError
		if !errors.As(err, &te) || !allReasons[te.Reason] || !errors.Is(err, ErrInvalidToken) {
			t.Fatalf("Authenticate error %v (%T)", err, err)
		}
		if te.Issuer != "" && te.Issuer != fuzzIss.url {
			t.Fatalf("error names issuer %q", te.Issuer)
		}
		if len(raw) >= 4 && strings.Contains(err.Error(), raw) {
			t.Fatalf("error %q echoes the token", err)
		}
	})
}

// noCleanupTB keeps a server registered through testing.F alive for every
// fuzz iteration (F.Cleanup would close it after the first).
type noCleanupTB struct{ testing.TB }

func (noCleanupTB) Cleanup(func()) {}
