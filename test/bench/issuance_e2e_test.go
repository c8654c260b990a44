//go:build e2e

package bench

import (
	"context"
	"flag"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The run's shape; `make bench-spire BENCHSPIRE_FLAGS='-rounds 20'` changes it.
var (
	flagRounds   = flag.Int("rounds", 12, "measured rounds; each runs one slice per stack")
	flagSlice    = flag.Duration("slice", 2*time.Second, "length of one stack's slice")
	flagFetchers = flag.Int("fetchers", 8, "concurrent JWT-SVID fetchers per stack")
	flagMinRatio = flag.Float64("min-ratio", 0.98, "fail below this median agentid/shaped throughput ratio (the gate)")
	flagMaxCPU   = flag.Float64("max-cpu-ratio", 1.02, "fail above this agentid/shaped CPU-per-token ratio (the gate)")
	flagPlain    = flag.Bool("plain", true, "also measure SPIRE without a composer (the plugin hop, for context)")
	flagShaped   = flag.Bool("shaped", true, "measure the trivial composer adding fixed claims of agentid's shape (the gate's baseline; false reports only agentid/trivial and gates nothing)")
	// A diagnostic, not the figure: with the trivial composer's
	// claim as big as agentid's claims, the difference left is agentid's
	// machinery rather than its token's size.
	flagPprof             = flag.Bool("pprof", false, "diagnostic: serve net/http/pprof from every spire-server (its URL is logged); SPIRE's gRPC tracing comes with it")
	flagTrivialClaimBytes = flag.Int("trivial-claim-bytes", 0, "length of the trivial composer's claim value; 0 for the short fixed \"bench\"")
)

// slice is one stack's share of a round.
type slice struct {
	ok      int
	elapsed time.Duration
	// cpu is the CPU time each of the stack's processes used in the
	// slice, in the order of stack.pids.
	cpu []time.Duration
	lat []time.Duration
}

func (s slice) rate() float64 { return float64(s.ok) / s.elapsed.Seconds() }

// targets numbers the target audiences across all stacks, so that no fetch
// in the run repeats an audience: every one misses spire-agent's cache and
// reaches spire-server.
var targets atomic.Uint64

func nextTarget() string {
	return fmt.Sprintf("spiffe://example.org/svc/target-%09d", targets.Add(1))
}

// run has every fetcher of s fetch JWT-SVIDs, each for a new audience,
// until d has passed; fetches in flight at the deadline finish and count,
// and the slice's length runs until the last one returns. The first error
// ends the slice and is returned: a benchmark of failures measures nothing.
func (s *stack) run(d time.Duration) (slice, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d+30*time.Second)
	defer cancel()
	cpu0, err := cpuOf(s.pids)
	if err != nil {
		return slice{}, err
	}
	start := time.Now()
	deadline := start.Add(d)
	lats := make([][]time.Duration, len(s.clients))
	errs := make([]error, len(s.clients))
	var failed atomic.Bool
	var wg sync.WaitGroup
	for i, c := range s.clients {
		lats[i] = make([]time.Duration, 0, 1024)
		wg.Go(func() {
			for !failed.Load() && time.Now().Before(deadline) {
				target := nextTarget()
				t0 := time.Now()
				if _, err := s.fetch(ctx, c, target); err != nil {
					errs[i] = err
					failed.Store(true)
					return
				}
				lats[i] = append(lats[i], time.Since(t0))
			}
		})
	}
	wg.Wait()
	out := slice{elapsed: time.Since(start)}
	cpu1, err := cpuOf(s.pids)
	if err != nil {
		return slice{}, err
	}
	out.cpu = make([]time.Duration, len(cpu1))
	for i := range cpu1 {
		out.cpu[i] = cpu1[i] - cpu0[i]
	}
	for i := range lats {
		if errs[i] != nil {
			return slice{}, fmt.Errorf("bench: %s: fetch: %w", s.name, errs[i])
		}
		out.ok += len(lats[i])
		out.lat = append(out.lat, lats[i]...)
	}
	return out, nil
}

// BenchmarkIssuance measures what agentid-composer costs SPIRE's JWT-SVID
// issuance (the SPIRE issuance floor): cache-miss issuance through real
// SPIRE with agentid-composer against the same SPIRE with the `shaped`
// composer (agentid's claims, fixed, no work), in alternating slices. The
// gate: median of round ratios >= -min-ratio (0.98) and CPU per token <=
// -max-cpu-ratio (1.02×); agentid/trivial and shaped/trivial (SPIRE's own
// cost of the claims) are reported beside it. It runs once whatever
// b.N is (its rounds are its own loop); run it with -benchtime 1x. See
// doc.go for what it sets up and why.
func BenchmarkIssuance(b *testing.B) {
	if *flagRounds < 2 || *flagSlice <= 0 || *flagFetchers < 1 {
		b.Fatalf("bench: want -rounds >= 2, -slice > 0, -fetchers >= 1; got %d, %s, %d", *flagRounds, *flagSlice, *flagFetchers)
	}
	b.Logf("load average at start: %s", loadAverage())

	var stacks []*stack
	if *flagPlain {
		stacks = append(stacks, startPlain(b))
	}
	trivial := startTrivial(b, "trivial", *flagTrivialClaimBytes, false)
	stacks = append(stacks, trivial)
	var shaped *stack
	if *flagShaped {
		shaped = startTrivial(b, "shaped", 0, true)
		stacks = append(stacks, shaped)
	}
	agentid := startAgentID(b)
	stacks = append(stacks, agentid)
	for _, s := range stacks {
		s.dial(b, *flagFetchers)
		s.waitIssuing(b, nextTarget())
		s.verifySample(b, nextTarget())
	}
	b.Logf("stacks ready, sample tokens verified; load average: %s", loadAverage())

	// Warm-up: one slice each, discarded. It opens every connection and
	// fills spire-agent's JWT-SVID cache to its 1000 entries, so every
	// measured fetch also evicts one, as in a long-running agent.
	for _, s := range stacks {
		if _, err := s.run(*flagSlice); err != nil {
			b.Fatal(err)
		}
	}

	b.ResetTimer()
	results := map[*stack][]slice{}
	for r := range *flagRounds {
		// ABBA order: each round reverses the one before, so drift that
		// is linear over two rounds falls equally on every stack.
		order := slices.Clone(stacks)
		if r%2 == 1 {
			slices.Reverse(order)
		}
		for _, s := range order {
			sl, err := s.run(*flagSlice)
			if err != nil {
				b.Fatal(err)
			}
			results[s] = append(results[s], sl)
		}
		line := fmt.Sprintf("round %2d:", r+1)
		for _, s := range stacks {
			line += fmt.Sprintf(" %s %6.1f/s", s.name, results[s][r].rate())
		}
		b.Logf("%s  agentid/trivial %.3f  load %s", line, results[agentid][r].rate()/results[trivial][r].rate(), loadAverage())
	}
	b.StopTimer()

	// Summary per stack.
	type summary struct {
		ok       int
		elapsed  time.Duration
		cpu      []time.Duration // per process, in stack.pids order
		cpuAll   time.Duration
		p50, p99 time.Duration
		rates    []float64
	}
	sum := map[*stack]*summary{}
	for _, s := range stacks {
		m := &summary{cpu: make([]time.Duration, len(s.pids))}
		var lat []time.Duration
		for _, sl := range results[s] {
			m.ok += sl.ok
			m.elapsed += sl.elapsed
			for i, c := range sl.cpu {
				m.cpu[i] += c
				m.cpuAll += c
			}
			m.rates = append(m.rates, sl.rate())
			lat = append(lat, sl.lat...)
		}
		slices.Sort(lat)
		m.p50, m.p99 = percentile(lat, 50), percentile(lat, 99)
		sum[s] = m
	}
	// ratios compares two stacks' throughput: the median of the rounds'
	// ratios (each round's two slices are neighbours in time) and the
	// ratio of the totals.
	ratios := func(num, den *stack) (med, total float64) {
		var rs []float64
		for r := range results[num] {
			rs = append(rs, results[num][r].rate()/results[den][r].rate())
		}
		n, d := sum[num], sum[den]
		return median(rs), (float64(n.ok) / n.elapsed.Seconds()) / (float64(d.ok) / d.elapsed.Seconds())
	}
	cpuRatio := func(num, den *stack) float64 {
		n, d := sum[num], sum[den]
		return (n.cpuAll.Seconds() / float64(n.ok)) / (d.cpuAll.Seconds() / float64(d.ok))
	}

	var tbl strings.Builder
	fmt.Fprintf(&tbl, "%d rounds of %s slices, %d fetchers, every fetch a new audience (cache miss)\n", *flagRounds, *flagSlice, *flagFetchers)
	fmt.Fprintf(&tbl, "%-8s %8s %9s %9s %9s %9s %10s  %s\n", "stack", "tokens", "tokens/s", "median/s", "p50", "p99", "cpu/token", "by process")
	for _, s := range stacks {
		m := sum[s]
		var parts []string
		for i, c := range m.cpu {
			parts = append(parts, fmt.Sprintf("%s %s", s.procs[i], perToken(c, m.ok)))
		}
		fmt.Fprintf(&tbl, "%-8s %8d %9.1f %9.1f %9s %9s %10s  %s\n", s.name, m.ok, float64(m.ok)/m.elapsed.Seconds(), median(m.rates),
			m.p50.Round(10*time.Microsecond), m.p99.Round(10*time.Microsecond), perToken(m.cpuAll, m.ok), strings.Join(parts, ", "))
	}
	med, total := ratios(agentid, trivial)
	fmt.Fprintf(&tbl, "agentid/trivial throughput: median of round ratios %.3f, total %.3f; CPU per token %.3f×\n",
		med, total, cpuRatio(agentid, trivial))
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(med, "agentid/trivial")
	b.ReportMetric(total, "agentid/trivial-total")
	b.ReportMetric(cpuRatio(agentid, trivial), "agentid/trivial-cpu")
	b.ReportMetric(float64(sum[agentid].p50.Microseconds())/1000, "agentid-p50-ms")
	b.ReportMetric(float64(sum[agentid].p99.Microseconds())/1000, "agentid-p99-ms")
	b.ReportMetric(float64(sum[trivial].p50.Microseconds())/1000, "trivial-p50-ms")
	b.ReportMetric(float64(sum[trivial].p99.Microseconds())/1000, "trivial-p99-ms")
	if shaped != nil {
		sm, st := ratios(agentid, shaped)
		fmt.Fprintf(&tbl, "agentid/shaped throughput (agentid's own machinery, same token shape): median %.3f, total %.3f; CPU per token %.3f× (gate: median >= %.2f, CPU <= %.2f×)\n",
			sm, st, cpuRatio(agentid, shaped), *flagMinRatio, *flagMaxCPU)
		tm, tt := ratios(shaped, trivial)
		fmt.Fprintf(&tbl, "shaped/trivial throughput (what SPIRE spends on agentid's claims): median %.3f, total %.3f; CPU per token %.3f×\n",
			tm, tt, cpuRatio(shaped, trivial))
		b.ReportMetric(sm, "agentid/shaped")
		b.ReportMetric(cpuRatio(agentid, shaped), "agentid/shaped-cpu")
		b.ReportMetric(tm, "shaped/trivial")
	}
	if *flagPlain {
		plain := stacks[0]
		pm, pt := ratios(trivial, plain)
		fmt.Fprintf(&tbl, "trivial/none throughput (the plugin hop, context only): median %.3f, total %.3f; CPU per token %.3f×\n",
			pm, pt, cpuRatio(trivial, plain))
		b.ReportMetric(pm, "trivial/none")
	}
	fmt.Fprintf(&tbl, "load average at end: %s", loadAverage())
	b.Logf("\n%s", tbl.String())

	if shaped == nil {
		b.Log("bench: -shaped=false: no gate (its baseline is the shaped stack)")
		return
	}
	if sm, _ := ratios(agentid, shaped); sm < *flagMinRatio {
		b.Errorf("bench: agentid/shaped throughput ratio %.3f (median of %d rounds), want at least %.2f", sm, *flagRounds, *flagMinRatio)
	}
	if c := cpuRatio(agentid, shaped); c > *flagMaxCPU {
		b.Errorf("bench: agentid/shaped CPU per token %.3f×, want at most %.2f×", c, *flagMaxCPU)
	}
}

// perToken is CPU time divided over n tokens, rounded for the table.
func perToken(cpu time.Duration, n int) time.Duration {
	if n == 0 {
		return 0
	}
	return (cpu / time.Duration(n)).Round(time.Microsecond)
}
