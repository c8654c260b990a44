// Package bench measures what agentid adds to JWT-SVID issuance on real
// SPIRE (the SPIRE issuance floor): cache-miss issuance through
// spire-server and spire-agent v1.13.3 with agentid-composer, against the
// same SPIRE with the shaped composer, which adds fixed claims of exactly
// agentid's shape and does no work. Any external composer already costs
// SPIRE about a fifth of its throughput (the plugin hop); the figure here
// is what agentid's own machinery costs on top, and the benchmark fails
// below 0.98 of the shaped composer's throughput (median of round ratios)
// or above 1.02× its CPU per token. It also benchmarks agentid's OAuth
// token grant against Ory Hydra's (BenchmarkGrantVsHydra).
//
// It needs the e2e build tag and the SPIRE binaries (test/tools/build.sh
// spire, or `make tools-spire`), so `go test ./...` and `make test` do not
// run it:
//
//	make bench-spire
//	go test -count=1 -tags e2e -run '^$' -bench BenchmarkIssuance -benchtime 1x ./bench/ -rounds 12 -slice 2s
//
// # What runs
//
// Up to three stacks, side by side for the whole run, each its own
// spire-server and spire-agent (sqlite, join token, disk keys, signing rate
// limit off, log level INFO, all from test/harness):
//
//   - none: no composer, the baseline of the plugin hop (-plain=false
//     leaves it out);
//   - trivial: the harness's test plugin as composer
//     (test/harness/internal/testplugin): adds harness_marker to every
//     JWT-SVID and answers Unimplemented for X.509;
//   - shaped (-shaped=false leaves it out): the same test plugin adding,
//     instead of harness_marker, fixed claims of exactly agentid's shape
//     (principal, scope, delegation, built with pkg/claims), with the
//     stack asking for a marker audience that the plugin removes. SPIRE
//     then signs, parses and caches tokens like agentid's, so agentid/shaped
//     is agentid's own machinery (replica lookup, audit, agentid-server)
//     and shaped/trivial is what SPIRE itself spends on agentid's claims;
//   - agentid: agentid-composer following a real agentid-server, which
//     verifies a user token from an in-process OpenID provider
//     (pkg/oidcauth/oidctest), applies a policy rule and records one
//     delegation from alice to the benchmark's workload.
//
// In every stack the benchmark process itself is the workload: one entry,
// spiffe://example.org/agent/bench, selected by unix:uid, with a 5-minute
// JWT-SVID TTL. Each fetcher (8 by default, -fetchers) holds its own
// Workload API client and asks for a JWT-SVID for a target audience never
// asked before, so every fetch misses spire-agent's cache and is signed by
// spire-server. In agentid's stack the request also carries the marker
// audience urn:agentid:delegation:<id>, so every token takes the
// composer's whole path: replica lookup, claims, marker removal, and an
// issuance record sent to agentid-server's audit log.
//
// Every token is checked as it arrives (audience, and the composer's claim
// in the stacks that have one), and one sample per stack is validated
// against the trust domain's JWT bundle with its claims compared exactly;
// a single failed or wrong fetch fails the run, so the benchmark cannot
// pass by measuring errors.
//
// # Choices that keep the comparison honest
//
// The workload entry is created directly, the same in every stack, rather
// than through agentid-server's reconciler and agentid-attestor: the
// attestor runs on every Workload API call and would be charged to
// agentid's stack alone, and the issue measures the composer. agentid-server
// still declares the agent (a delegation needs a declared agent); its
// reconciled entry names a parent no spire-agent has, so it reaches no
// agent and every stack's spire-agent holds exactly one entry. The composer
// sees only the token's sub, so which entry produced it does not change
// the path measured.
//
// The trivial stack asks for the target audience alone: the marker is
// part of what agentid asks its users to send, so its bytes count against
// agentid. agentid-server's audit of every issuance is counted too: it is
// what the design promises for every delegated token.
//
// # How it measures
//
// After one discarded warm-up slice per stack, each round gives every
// stack one slice (-slice, 2 s) with all its fetchers busy, in ABBA order
// (each round reverses the previous one), for -rounds rounds (12).
// Neighbouring slices share the machine's state, so a round's ratio
// cancels most drift from other jobs on the machine; the gate is the
// median of the rounds' agentid/shaped ratios (-min-ratio, 0.98) with CPU per token at most -max-cpu-ratio (1.02×), and
// the ratio of the totals is reported beside it. The table also gives
// p50 and p99 fetch latency per stack, and the CPU time per token of each
// process (from /proc, during the stack's own slices): spire-server,
// spire-agent, the plugin, agentid-server, and the fetchers. On a machine
// with few cores, throughput follows CPU per token; the CPU ratio is the
// steadier figure when other jobs load the machine. The load average is
// printed at the start, after every round and at the end.
//
// -pprof serves net/http/pprof from every spire-server (URLs in the log),
// for profiling a long run (-rounds 30) with curl .../profile?seconds=40.
//
// -trivial-claim-bytes N is a diagnostic: it makes the trivial composer's
// claim N bytes long, so that with N near the size of agentid's claims
// (about 270) both stacks sign tokens of the same size and the difference
// left is agentid's machinery rather than its token's size.
package bench
