//go:build e2e

package bench

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/agentid/agentid/pkg/claims"
	"github.com/agentid/agentid/pkg/oidcauth/oidctest"
	delegationv1 "github.com/agentid/agentid/proto/agentid/delegation/v1"
	"github.com/agentid/agentid/test/harness"
)

// What every stack shares, so that only the composer differs.
const (
	// jwtSVIDTTL is the workload entry's jwt_svid_ttl in every stack. The
	// delegation outlives the run, so the composer never lowers exp.
	jwtSVIDTTL = 5 * time.Minute
	// spireLogLevel is SPIRE's production default: DEBUG writes a line per
	// signature and would dilute the composer's share of the cost.
	spireLogLevel = "INFO"
	// markerPrefix is agentid-composer's default marker_prefix.
	markerPrefix = "urn:agentid:delegation:"
	// userAudience is the OAuth2 client the user token is issued to.
	userAudience = "agentid-bench"
	// benchScope is the one scope the user delegates.
	benchScope = "bench:read"
	// readyTimeout bounds every wait for a part of a stack to be ready.
	readyTimeout = 60 * time.Second
)

var (
	// workloadID is the benchmark process's SPIFFE ID in every stack: the
	// agent's, in agentid's.
	workloadID = spiffeid.RequireFromString("spiffe://example.org/agent/bench")
	// nowhere is the parent of the entry agentid-server's reconciler makes
	// for the declared agent: no spire-agent has this ID, so that entry
	// reaches no agent's cache (see doc.go).
	nowhere = spiffeid.RequireFromString("spiffe://example.org/bench/no-such-node")
)

// stack is one spire-server and spire-agent pair and what the fetchers need
// to ask it for JWT-SVIDs.
type stack struct {
	name   string
	server *harness.SPIREServer
	agent  *harness.SPIREAgent
	// extraAud follows the unique target audience in every request: the
	// marker in agentid's stack, nothing elsewhere.
	extraAud []string
	// check is the per-fetch test that the token is what this stack
	// issues, so a failing stack cannot pass as a fast one. It runs on the
	// claims go-spiffe already decoded: a few map lookups.
	check func(s *jwtsvid.SVID, target string) error
	// verify is the full check of one sample token, once, outside the
	// measured slices.
	verify func(tb testing.TB, claims map[string]any)
	// pids are the processes whose CPU time is charged to the stack:
	// spire-server, spire-agent, the plugin, agentid-server, and this
	// process (the fetchers; only one stack runs at a time).
	pids []int
	// procs names pids, in order, for the CPU breakdown.
	procs   []string
	clients []*workloadapi.Client
}

// startSPIRE starts one server (with composer, when set) and one agent, and
// registers the benchmark process as workloadID by its uid, as every stack
// does.
func startSPIRE(tb testing.TB, name string, composer *harness.ExternalPlugin) *stack {
	tb.Helper()
	opts := harness.ServerOptions{CredentialComposer: composer, LogLevel: spireLogLevel}
	if *flagPprof {
		opts.ProfilingPort = harness.FreePort(tb)
		tb.Logf("bench: %s: spire-server pprof at http://localhost:%d/debug/pprof/", name, opts.ProfilingPort)
	}
	srv := harness.StartSPIREServer(tb, opts)
	agent := harness.StartSPIREAgent(tb, srv, harness.AgentOptions{LogLevel: spireLogLevel})
	srv.CreateEntry(tb, harness.Entry{
		ID:         "bench-workload",
		SPIFFEID:   workloadID,
		ParentID:   agent.ID(),
		Selectors:  []string{fmt.Sprintf("unix:uid:%d", os.Getuid())},
		JWTSVIDTTL: jwtSVIDTTL,
	})
	agent.WaitForX509SVID(tb, workloadID, readyTimeout)
	s := &stack{name: name, server: srv, agent: agent,
		pids: []int{srv.Pid(), agent.Pid()}, procs: []string{"spire-server", "spire-agent"}}
	if composer != nil {
		// The plugin runs as spire-server's child; its CPU time is its own.
		kids, err := childrenOf(srv.Pid())
		if err != nil {
			tb.Fatal(err)
		}
		if len(kids) != 1 {
			tb.Fatalf("bench: %s: spire-server %d has children %v, want its one plugin", name, srv.Pid(), kids)
		}
		s.pids = append(s.pids, kids[0])
		s.procs = append(s.procs, composer.Name+"-composer")
	}
	return s
}

// startPlain is SPIRE without any composer: the baseline of the plugin hop.
func startPlain(tb testing.TB) *stack {
	tb.Helper()
	s := startSPIRE(tb, "none", nil)
	s.check = func(svid *jwtsvid.SVID, target string) error {
		if err := checkAudience(svid, target); err != nil {
			return err
		}
		if _, ok := svid.Claims["harness_marker"]; ok {
			return errors.New("unexpected composer claim")
		}
		return nil
	}
	s.verify = func(tb testing.TB, claims map[string]any) {
		tb.Helper()
		wantClaimNames(tb, s.name, claims, "aud", "exp", "iat", "iss", "sub")
	}
	return s
}

// startTrivial is SPIRE with the harness's test composer: one external
// plugin that adds one fixed string claim and keeps the defaults for X.509.
// claimBytes, when positive, makes the claim that long, to tell the cost of
// a bigger token from the cost of agentid's machinery. mimic has it ask for
// a marker audience too and add claims of agentid's shape, fixed (see the
// test plugin): what is left between it and agentid is agentid's own
// machinery, not what SPIRE spends on the token.
func startTrivial(tb testing.TB, name string, claimBytes int, mimic bool) *stack {
	tb.Helper()
	trivialMarker := "bench"
	if claimBytes > 0 {
		trivialMarker = strings.Repeat("x", claimBytes)
	}
	bin := harness.BuildProgram(tb, "./test/harness/internal/testplugin")
	data := fmt.Sprintf("marker = %q", trivialMarker)
	if mimic {
		data += "\nmimic_agentid = true"
	}
	s := startSPIRE(tb, name, &harness.ExternalPlugin{
		Name: name, Cmd: bin, Args: []string{"composer"}, Data: data,
	})
	// The shaped stack's tokens carry the mimicked delegation instead of
	// harness_marker; the claim values are fixed by the plugin.
	const mimicID = "dlg_0000000000000000000000000a" // testplugin.MimicDelegationID
	if mimic {
		s.extraAud = []string{claims.MarkerPrefix + mimicID}
	}
	composed := func(c map[string]any) error {
		if !mimic {
			if c["harness_marker"] != trivialMarker {
				return fmt.Errorf("harness_marker %v, want %q", c["harness_marker"], trivialMarker)
			}
			return nil
		}
		if d, _ := c["delegation"].(map[string]any); d["id"] != mimicID {
			return fmt.Errorf("delegation claim %v, want id %s", c["delegation"], mimicID)
		}
		return nil
	}
	s.check = func(svid *jwtsvid.SVID, target string) error {
		if err := checkAudience(svid, target); err != nil {
			return err
		}
		return composed(svid.Claims)
	}
	s.verify = func(tb testing.TB, c map[string]any) {
		tb.Helper()
		if mimic {
			wantClaimNames(tb, s.name, c, "aud", "delegation", "exp", "iat", "iss", "principal", "scope", "sub")
		} else {
			wantClaimNames(tb, s.name, c, "aud", "exp", "harness_marker", "iat", "iss", "sub")
		}
		if err := composed(c); err != nil {
			tb.Fatalf("bench: %s: %v", s.name, err)
		}
	}
	return s
}

// startAgentID is SPIRE with agentid-composer following a real
// agentid-server, which holds one delegation from alice to workloadID.
// Every fetch names that delegation, so every token goes through the
// composer's whole path: replica lookup, claims, marker removal, and an
// issuance record sent to agentid-server's audit log.
func startAgentID(tb testing.TB) *stack {
	tb.Helper()
	composerBin := harness.BuildProgram(tb, "./cmd/agentid-composer")
	serverBin := harness.BuildProgram(tb, "./cmd/agentid-server")
	idp := oidctest.New(tb)

	sockDir, err := os.MkdirTemp("", "aidb")
	if err != nil {
		tb.Fatalf("bench: %v", err)
	}
	tb.Cleanup(func() { os.RemoveAll(sockDir) })
	localSocket := filepath.Join(sockDir, "agentid.sock")

	s := startSPIRE(tb, "agentid", &harness.ExternalPlugin{
		Name: "agentid", Cmd: composerBin,
		Data: fmt.Sprintf("agentid_socket_path = %s", strconv.Quote(localSocket)),
	})

	dir := tb.TempDir()
	conf := filepath.Join(dir, "agentid-server.yaml")
	prog, _ := harness.StartProgramOnPorts(tb, 1, "agentid-server /readyz", readyTimeout,
		func(ports []int) (harness.ProgramOptions, func() error) {
			httpAddr := "127.0.0.1:" + strconv.Itoa(ports[0])
			if err := os.WriteFile(conf, []byte(serverConfig(filepath.Join(dir, "agentid.db"), s.server.AdminSocket(), localSocket, httpAddr, idp.URL())), 0o600); err != nil {
				tb.Fatalf("bench: write agentid-server config: %v", err)
			}
			return harness.ProgramOptions{
				Name: "agentid-server", Path: serverBin, Args: []string{"-config", conf}, Dir: dir,
			}, func() error { return getOK("http://" + httpAddr + "/readyz") }
		})
	s.pids = append(s.pids, prog.Pid())
	s.procs = append(s.procs, "agentid-server")

	dlg := createDelegation(tb, localSocket, idp.Token(tb, oidctest.Claims{
		Subject: "alice", Audience: userAudience, Email: "alice@example.com", EmailVerified: true,
	}))
	s.extraAud = []string{markerPrefix + dlg.GetId()}
	s.check = func(svid *jwtsvid.SVID, target string) error {
		if err := checkAudience(svid, target); err != nil {
			return err
		}
		d, _ := svid.Claims["delegation"].(map[string]any)
		if d["id"] != dlg.GetId() {
			return fmt.Errorf("delegation claim %v, want id %s", svid.Claims["delegation"], dlg.GetId())
		}
		return nil
	}
	s.verify = func(tb testing.TB, claims map[string]any) {
		tb.Helper()
		wantClaimNames(tb, s.name, claims, "aud", "delegation", "exp", "iat", "iss", "principal", "scope", "sub")
		want := map[string]any{
			"iss": idp.URL(), "sub": "alice", "email": "alice@example.com",
		}
		if !mapEqual(claims["principal"], want) {
			tb.Fatalf("bench: agentid: principal %v, want %v", claims["principal"], want)
		}
		if claims["scope"] != benchScope {
			tb.Fatalf("bench: agentid: scope %v, want %q", claims["scope"], benchScope)
		}
		d, _ := claims["delegation"].(map[string]any)
		chain, _ := d["chain"].([]any)
		if d["id"] != dlg.GetId() || d["root"] != dlg.GetId() || len(chain) != 1 || chain[0] != workloadID.String() ||
			d["expires_at"] != dlg.GetExpiresAt().AsTime().UTC().Format(time.RFC3339) {
			tb.Fatalf("bench: agentid: delegation claim %v, want id and root %s, chain [%s], expires_at %s",
				d, dlg.GetId(), workloadID, dlg.GetExpiresAt().AsTime().UTC().Format(time.RFC3339))
		}
	}
	return s
}

// serverConfig is agentid-server's configuration: one issuer (the test
// OpenID provider), one rule letting alice delegate benchScope to the
// bench agent from the local socket, and the bench agent declared with a
// parent no spire-agent has.
func serverConfig(storePath, adminSocket, localSocket, httpAddr, issuer string) string {
	q := strconv.Quote
	var b strings.Builder
	fmt.Fprintf(&b, "trust_domain: %s\n", workloadID.TrustDomain().Name())
	fmt.Fprintf(&b, "store:\n  path: %s\n", q(storePath))
	fmt.Fprintf(&b, "spire:\n  admin_socket: %s\n", q(adminSocket))
	fmt.Fprintf(&b, "listen:\n  local_socket: %s\n  http: %s\n", q(localSocket), q(httpAddr))
	fmt.Fprintf(&b, "oidc:\n  issuers:\n    - url: %s\n      audiences: [%s]\n      require_verified_email: true\n", q(issuer), q(userAudience))
	b.WriteString("policy:\n  rules:\n")
	fmt.Fprintf(&b, "    - name: alice-may-ask-the-bench-agent\n      when: %s\n      scopes: [%s]\n      max_ttl: 2h\n      callers: [local]\n",
		q(`user.sub == "alice" && agent.id == "`+workloadID.String()+`"`), q(benchScope))
	b.WriteString("agents:\n")
	fmt.Fprintf(&b, "  - name: bench\n    spiffe_id: %s\n    parent_id: %s\n    selectors: [%s]\n    scope_ceiling: [%s]\n    jwt_svid_ttl: %s\n",
		q(workloadID.String()), q(nowhere.String()), q("aiagent:name:bench")+", "+q(fmt.Sprintf("unix:uid:%d", os.Getuid())), q(benchScope), jwtSVIDTTL)
	b.WriteString("log:\n  level: info\n  format: text\n")
	return b.String()
}

// createDelegation asks agentid-server, over its local socket, for a
// delegation of benchScope from the user of userToken to workloadID.
func createDelegation(tb testing.TB, localSocket, userToken string) *delegationv1.Delegation {
	tb.Helper()
	conn, err := grpc.NewClient("unix://"+localSocket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		tb.Fatalf("bench: dial agentid-server: %v", err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := delegationv1.NewDelegationServiceClient(conn).CreateDelegation(ctx, &delegationv1.CreateDelegationRequest{
		UserToken: userToken,
		AgentId:   workloadID.String(),
		Scopes:    []string{benchScope},
		Ttl:       durationpb.New(time.Hour),
		Intent:    "issuance benchmark",
	})
	if err != nil {
		tb.Fatalf("bench: create delegation: %v", err)
	}
	return resp.GetDelegation()
}

// dial opens n Workload API clients on the stack's agent, one per fetcher,
// as n agent processes would each hold their own.
func (s *stack) dial(tb testing.TB, n int) {
	tb.Helper()
	for range n {
		c, err := workloadapi.New(context.Background(), workloadapi.WithAddr(s.agent.WorkloadAddr()))
		if err != nil {
			tb.Fatalf("bench: %s: workload API client: %v", s.name, err)
		}
		tb.Cleanup(func() { c.Close() })
		s.clients = append(s.clients, c)
	}
	// The fetchers' own CPU: parsing a bigger token is part of what a
	// delegated token costs its workload.
	s.pids = append(s.pids, os.Getpid())
	s.procs = append(s.procs, "fetchers")
}

// fetch asks for a JWT-SVID for target (plus the stack's extra audience)
// and checks it.
func (s *stack) fetch(ctx context.Context, c *workloadapi.Client, target string) (*jwtsvid.SVID, error) {
	svid, err := c.FetchJWTSVID(ctx, jwtsvid.Params{Subject: workloadID, Audience: target, ExtraAudiences: s.extraAud})
	if err != nil {
		return nil, err
	}
	if err := s.check(svid, target); err != nil {
		return nil, fmt.Errorf("%s issued a wrong token: %w", s.name, err)
	}
	return svid, nil
}

// waitIssuing fetches until the stack issues a token that passes its check:
// agentid-composer's replica comes up after agentid-server does.
func (s *stack) waitIssuing(tb testing.TB, target string) {
	tb.Helper()
	deadline := time.Now().Add(readyTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := s.fetch(ctx, s.clients[0], target)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("bench: %s: no valid JWT-SVID within %s: %v", s.name, readyTimeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// verifySample fetches one token, validates its signature against the JWT
// bundle the agent serves and checks all its claims: the stack issues what
// the benchmark claims to measure.
func (s *stack) verifySample(tb testing.TB, target string) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := s.clients[0]
	svid, err := s.fetch(ctx, c, target)
	if err != nil {
		tb.Fatalf("bench: %s: sample token: %v", s.name, err)
	}
	bundles, err := c.FetchJWTBundles(ctx)
	if err != nil {
		tb.Fatalf("bench: %s: JWT bundles: %v", s.name, err)
	}
	v, err := jwtsvid.ParseAndValidate(svid.Marshal(), bundles, []string{target})
	if err != nil {
		tb.Fatalf("bench: %s: sample token does not validate: %v", s.name, err)
	}
	if v.ID != workloadID || !slices.Equal(v.Audience, []string{target}) {
		tb.Fatalf("bench: %s: sample token sub %s aud %v, want %s [%s]", s.name, v.ID, v.Audience, workloadID, target)
	}
	iat, _ := v.Claims["iat"].(float64)
	exp, _ := v.Claims["exp"].(float64)
	if time.Duration(exp-iat)*time.Second != jwtSVIDTTL {
		tb.Fatalf("bench: %s: sample token lives %ds, want the entry's %s", s.name, int64(exp-iat), jwtSVIDTTL)
	}
	s.verify(tb, v.Claims)
	tb.Logf("%s: sample token verified, %d bytes", s.name, len(svid.Marshal()))
}

func checkAudience(svid *jwtsvid.SVID, target string) error {
	if svid.ID != workloadID || len(svid.Audience) != 1 || svid.Audience[0] != target {
		return fmt.Errorf("sub %s aud %v, want %s [%s]", svid.ID, svid.Audience, workloadID, target)
	}
	return nil
}

// wantClaimNames fails unless claims has exactly the names given (sorted).
func wantClaimNames(tb testing.TB, stack string, claims map[string]any, names ...string) {
	tb.Helper()
	got := make([]string, 0, len(claims))
	for k := range claims {
		got = append(got, k)
	}
	slices.Sort(got)
	if !slices.Equal(got, names) {
		tb.Fatalf("bench: %s: sample token has claims %v, want %v", stack, got, names)
	}
}

// mapEqual compares a decoded JSON object with want, string values only.
func mapEqual(got any, want map[string]any) bool {
	m, ok := got.(map[string]any)
	if !ok || len(m) != len(want) {
		return false
	}
	for k, v := range want {
		if m[k] != v {
			return false
		}
	}
	return true
}

func getOK(u string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", u, resp.Status)
	}
	return nil
}
