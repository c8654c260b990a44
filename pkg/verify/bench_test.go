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

// The figures these benchmarks exist for are ratios to one raw ECDSA P-256
// verification measured in the same run (BenchmarkRatios interleaves the
// three so that load from other processes hits them alike):
//
//	go test ./pkg/verify/ -run '^$' -bench . -benchmem
//
// Cold Verify must reach 0.75 of the raw verification's throughput and warm
// Verify 10 times it.

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

// BenchmarkRatios runs one raw verification, one cold Verify, warmBatch
// warm Verifys and one go-spiffe ParseAndValidate (the reference, on the
// same kind of token) per iteration, timing each, and reports throughput
// relative to the raw verification: cold-ratio (target >= 0.75), warm-ratio
// (target >= 10) and gospiffe-ratio. Each ratio is the median over blocks of blockSize
// iterations, so that a burst of load from other processes skews a block,
// not the figure; the means are reported too.
func BenchmarkRatios(b *testing.B) {
	const warmBatch, blockSize = 64, 32
	env := testca.NewEnv(b)
	raw := newRawVerify(b)
	cold := &coldVerifier{env: env, tokens: tokens(b, env)}
	warm := env.Verifier(b)
	warmTok := env.Good(b)
	if _, err := warm.Verify(env.Analyst, warmTok); err != nil {
		b.Fatal(err)
	}
	gsTok, aud := env.Good(b), []string{testca.Audience}
	var tRaw, tCold, tWarm, bRaw, bCold, bWarm, bGS time.Duration
	var coldRatios, warmRatios, gsRatios []float64
	n := 0
	for b.Loop() {
		t0 := time.Now()
		raw.run(b)
		t1 := time.Now()
		v, tok := cold.next(b)
		if _, err := v.Verify(env.Analyst, tok); err != nil {
			b.Fatal(err)
		}
		t2 := time.Now()
		for i := 0; i < warmBatch; i++ {
			if _, err := warm.Verify(env.Analyst, warmTok); err != nil {
				b.Fatal(err)
			}
		}
		t3 := time.Now()
		if _, err := jwtsvid.ParseAndValidate(gsTok, env.Bundles, aud); err != nil {
			b.Fatal(err)
		}
		t4 := time.Now()
		bRaw, bCold, bWarm, bGS = bRaw+t1.Sub(t0), bCold+t2.Sub(t1), bWarm+t3.Sub(t2), bGS+t4.Sub(t3)
		if n++; n%blockSize == 0 {
			coldRatios = append(coldRatios, float64(bRaw)/float64(bCold))
			warmRatios = append(warmRatios, float64(bRaw)*warmBatch/float64(bWarm))
			gsRatios = append(gsRatios, float64(bRaw)/float64(bGS))
			tRaw, tCold, tWarm = tRaw+bRaw, tCold+bCold, tWarm+bWarm
			bRaw, bCold, bWarm, bGS = 0, 0, 0, 0
		}
	}
	if len(coldRatios) == 0 {
		return // b.N below one block: the calibration run
	}
	blocks := float64(len(coldRatios) * blockSize)
	b.ReportMetric(float64(tRaw.Nanoseconds())/blocks, "raw-ns")
	b.ReportMetric(float64(tCold.Nanoseconds())/blocks, "cold-ns")
	b.ReportMetric(float64(tWarm.Nanoseconds())/(blocks*warmBatch), "warm-ns")
	b.ReportMetric(median(coldRatios), "cold-ratio")
	b.ReportMetric(median(warmRatios), "warm-ratio")
	b.ReportMetric(median(gsRatios), "gospiffe-ratio")
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}
