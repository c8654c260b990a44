package verify_test

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"slices"
	"testing"
	"time"

	"github.com/agentid/agentid/pkg/verify"
	"github.com/agentid/agentid/pkg/verify/internal/testca"
	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"
)

// The figures these benchmarks exist for are ratios measured in one run
// (BenchmarkRatios interleaves the calls so that load from other processes
// hits them alike):
//
//	go test ./pkg/verify/ -run '^$' -bench . -benchmem
//
// Cold Verify (a token never seen) must be no slower than go-spiffe's
// jwtsvid.ParseAndValidate on the same kind of token (cold-vs-gospiffe >= 1),
// and warm Verify (the token cache) 10 times faster than cold
// (warm-vs-cold >= 10). BenchmarkGoSpiffeParseAndValidate,
// BenchmarkVerifyCold and BenchmarkVerifyWarm give the same three on their
// own, with allocations; BenchmarkRawECDSAP256Verify is the floor any
// verifier of an ES256 token pays.

const coldPool = 512

// tokens returns coldPool distinct genuine tokens of the analyst.
func tokens(b *testing.B, env *testca.Env) []string {
	b.Helper()
	out := make([]string, coldPool)
	for i := range out {
		c := env.Claims(b)
		c["jti"] = i
		out[i] = env.CA.Mint(b, c)
	}
	return out
}

type rawVerify struct {
	key    *ecdsa.PublicKey
	digest [32]byte
	sig    []byte
}

func newRawVerify(b *testing.B) rawVerify {
	b.Helper()
	k := testca.NewKey(b)
	d := sha256.Sum256([]byte("a JWS signing input"))
	sig, err := ecdsa.SignASN1(rand.Reader, k, d[:])
	if err != nil {
		b.Fatal(err)
	}
	return rawVerify{key: &k.PublicKey, digest: d, sig: sig}
}

func (r rawVerify) run(b *testing.B) {
	if !ecdsa.VerifyASN1(r.key, r.digest[:], r.sig) {
		b.Fatal("raw verification failed")
	}
}

func BenchmarkRawECDSAP256Verify(b *testing.B) {
	r := newRawVerify(b)
	b.ReportAllocs()
	for b.Loop() {
		r.run(b)
	}
}

// BenchmarkGoSpiffeParseAndValidate is the reference: go-spiffe on the same
// delegated token, without any of agentid's checks.
func BenchmarkGoSpiffeParseAndValidate(b *testing.B) {
	env := testca.NewEnv(b)
	tok := env.Good(b)
	aud := []string{testca.Audience}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := jwtsvid.ParseAndValidate(tok, env.Bundles, aud); err != nil {
			b.Fatal(err)
		}
	}
}

// coldVerifier hands out a Verifier and a token it has never seen.
type coldVerifier struct {
	env    *testca.Env
	tokens []string
	v      *verify.Verifier
	i      int
}

func (c *coldVerifier) next(b *testing.B) (*verify.Verifier, string) {
	if c.i%len(c.tokens) == 0 {
		var err error
		if c.v, err = verify.New(c.env.Config()); err != nil {
			b.Fatal(err)
		}
	}
	tok := c.tokens[c.i%len(c.tokens)]
	c.i++
	return c.v, tok
}

func BenchmarkVerifyCold(b *testing.B) {
	env := testca.NewEnv(b)
	c := &coldVerifier{env: env, tokens: tokens(b, env)}
	b.ReportAllocs()
	for b.Loop() {
		v, tok := c.next(b)
		if _, err := v.Verify(env.Analyst, tok); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyWarm(b *testing.B) {
	env := testca.NewEnv(b)
	v := env.Verifier(b)
	tok := env.Good(b)
	if _, err := v.Verify(env.Analyst, tok); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(env.Analyst, tok); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRatios runs one cold Verify, one go-spiffe ParseAndValidate (in
// alternating order) and warmBatch warm Verifys per iteration, timing each,
// and reports cold-vs-gospiffe (go-spiffe's time over cold Verify's, target
// >= 1) and warm-vs-cold (cold time over warm time, target >= 10). Each ratio
// is the median over blocks of blockSize iterations, so that a burst of load
// from other processes skews a block, not the figure; mean times per call
// are reported too.
func BenchmarkRatios(b *testing.B) {
	const warmBatch, blockSize = 64, 32
	env := testca.NewEnv(b)
	cold := &coldVerifier{env: env, tokens: tokens(b, env)}
	warm := env.Verifier(b)
	warmTok := env.Good(b)
	if _, err := warm.Verify(env.Analyst, warmTok); err != nil {
		b.Fatal(err)
	}
	gsTok, aud := env.Good(b), []string{testca.Audience}
	runCold := func() time.Duration {
		t0 := time.Now()
		v, tok := cold.next(b)
		if _, err := v.Verify(env.Analyst, tok); err != nil {
			b.Fatal(err)
		}
		return time.Since(t0)
	}
	runGS := func() time.Duration {
		t0 := time.Now()
		if _, err := jwtsvid.ParseAndValidate(gsTok, env.Bundles, aud); err != nil {
			b.Fatal(err)
		}
		return time.Since(t0)
	}
	var tCold, tWarm, tGS, bCold, bWarm, bGS time.Duration
	var gsRatios, warmRatios []float64
	n := 0
	for b.Loop() {
		if n%2 == 0 {
			bCold += runCold()
			bGS += runGS()
		} else {
			bGS += runGS()
			bCold += runCold()
		}
		t0 := time.Now()
		for i := 0; i < warmBatch; i++ {
			if _, err := warm.Verify(env.Analyst, warmTok); err != nil {
				b.Fatal(err)
			}
		}
		bWarm += time.Since(t0)
		if n++; n%blockSize == 0 {
			gsRatios = append(gsRatios, float64(bGS)/float64(bCold))
			warmRatios = append(warmRatios, float64(bCold)*warmBatch/float64(bWarm))
			tCold, tWarm, tGS = tCold+bCold, tWarm+bWarm, tGS+bGS
			bCold, bWarm, bGS = 0, 0, 0
		}
	}
	if len(gsRatios) == 0 {
		return // b.N below one block: the calibration run
	}
	blocks := float64(len(gsRatios) * blockSize)
	b.ReportMetric(float64(tGS.Nanoseconds())/blocks, "gospiffe-ns")
	b.ReportMetric(float64(tCold.Nanoseconds())/blocks, "cold-ns")
	b.ReportMetric(float64(tWarm.Nanoseconds())/(blocks*warmBatch), "warm-ns")
	b.ReportMetric(median(gsRatios), "cold-vs-gospiffe")
	b.ReportMetric(median(warmRatios), "warm-vs-cold")
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}
