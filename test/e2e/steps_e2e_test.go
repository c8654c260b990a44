//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/agentid/agentid/examples/service/whoami"
	"github.com/agentid/agentid/pkg/verify"
	"github.com/agentid/agentid/pkg/verify/httpmw"
	agentv1 "github.com/agentid/agentid/proto/agentid/agent/v1"
	delegationv1 "github.com/agentid/agentid/proto/agentid/delegation/v1"
	"github.com/agentid/agentid/test/e2e/stack"
)

// step1: every declared agent appears as a SPIRE entry owned by
// agentid-server, with the attestor's selectors and the node as parent; a
// process carrying the orchestrator's signed manifest is issued exactly the
// orchestrator's X509-SVID.
func (sc *scenario) step1(t *testing.T) {
	st := sc.st
	begin := time.Now()
	entries := st.WaitForEntries(t, entryTimeout)
	t.Logf("timing: SPIRE held agentid-server's entries for %d agents after %s more", len(entries), time.Since(begin).Round(time.Millisecond))
	for _, a := range stack.Agents {
		e := entries[a.ID]
		var sels []string
		for _, s := range e.Selectors {
			sels = append(sels, s.Type+":"+s.Value)
		}
		want := []string{"aiagent:name:" + a.Name, "aiagent:signer:" + stack.SignerKeyID}
		if !sameSet(sels, want) {
			t.Errorf("entry %s of %s: selectors %q, want %q", e.Id, a.ID, sels, want)
		}
		if parent := "spiffe://" + e.ParentId.TrustDomain + e.ParentId.Path; parent != st.Agent.ID().String() {
			t.Errorf("entry %s of %s: parent %s, want the node %s", e.Id, a.ID, parent, st.Agent.ID())
		}
		if e.JwtSvidTtl != 300 {
			t.Errorf("entry %s of %s: jwt_svid_ttl %d, want 300", e.Id, a.ID, e.JwtSvidTtl)
		}
	}
	// agentid-server reports the same: every agent synced, to that entry.
	out, err := st.CLI(t, nil, "-o", "json", "agents")
	if err != nil {
		t.Fatalf("agentid agents: %v", err)
	}
	var list []json.RawMessage
	if err := json.Unmarshal([]byte(out), &list); err != nil || len(list) != len(stack.Agents) {
		t.Fatalf("agentid agents listed %d agents (%v), want %d: %s", len(list), err, len(stack.Agents), out)
	}
	for _, raw := range list {
		var a agentv1.Agent
		if err := protojson.Unmarshal(raw, &a); err != nil {
			t.Fatalf("agent %s: %v", raw, err)
		}
		id, err := spiffeid.FromString(a.SpiffeId)
		if e := entries[id]; err != nil || e == nil || a.SyncState != agentv1.SyncState_SYNC_STATE_SYNCED || a.EntryId != e.Id {
			t.Errorf("agentid-server reports agent %s as %s with entry %q; want synced to SPIRE's entry", a.SpiffeId, a.SyncState, a.EntryId)
		}
	}

	begin = time.Now()
	r := st.WaitProbe(t, "orchestrator X509-SVID through the attestor", propagationTimeout,
		func(r stack.ProbeResult) bool { return r.Code == "OK" },
		st.Manifest(t, "orchestrator"), "x509")
	t.Logf("timing: first X509-SVID for the orchestrator %s after its entry was seen", time.Since(begin).Round(time.Millisecond))
	if !slices.Equal(r.IDs, []string{stack.Orchestrator.String()}) {
		t.Fatalf("orchestrator process was issued %q, want exactly [%s]", r.IDs, stack.Orchestrator)
	}
	// Every other declared agent too, each by its own manifest only.
	for _, a := range stack.Agents[1:] {
		r := st.WaitProbe(t, a.Name+" X509-SVID", propagationTimeout,
			func(r stack.ProbeResult) bool { return r.Code == "OK" }, st.Manifest(t, a.Name), "x509")
		if !slices.Equal(r.IDs, []string{a.ID.String()}) {
			t.Fatalf("%s process was issued %q, want exactly [%s]", a.Name, r.IDs, a.ID)
		}
	}
}

// step2: alice logs in at Hydra and hands her ID token to the Go example
// agent, attested as the orchestrator by its signed manifest. The agent asks
// agentid-server for a delegation over mTLS, fetches a delegated JWT-SVID
// and calls the example service over mTLS; the service answers with the
// agent, alice, the granted scopes and the chain, and the token carries
// exactly the claims pkg/claims defines.
func (sc *scenario) step2(t *testing.T) {
	st := sc.st
	begin := time.Now()
	sc.alice = st.Login(t, "alice", "alice@example.com", "marketing", "eu")
	t.Logf("timing: alice logged in at Hydra in %s", time.Since(begin).Round(time.Millisecond))

	// campaigns:write is in the orchestrator's ceiling but not in the
	// rule: the grant is the intersection.
	begin = time.Now()
	stdout, stderr, err := st.Exec(t, st.WorkloadEnv(st.Manifest(t, "orchestrator")), st.Bin(t, "go-agent"),
		"-server-addr", st.ServerAddr, "-server-id", stack.ServerID.String(),
		"-service-url", st.ServiceURL(), "-service-id", stack.ServiceID.String(),
		"-user-token-file", sc.alice.TokenFile, "-scopes", "campaigns:read compliance:check campaigns:write",
		"-ttl", "30m", "-intent", "check the Q3 campaign for GDPR issues", "-keep")
	if err != nil {
		t.Fatalf("go-agent as the orchestrator: %v", err)
	}
	t.Logf("timing: go-agent delegated, called the service and exited in %s", time.Since(begin).Round(time.Millisecond))
	id := dlgPattern.FindString(stderr)
	if id == "" || !strings.Contains(stderr, stack.Orchestrator.String()+" acts for ") {
		t.Fatalf("go-agent did not say which delegation it acts under: %q", stderr)
	}
	out, err := st.CLI(t, nil, "-o", "json", "get", id)
	if err != nil {
		t.Fatalf("agentid get %s: %v", id, err)
	}
	d := stack.ParseDelegation(t, out)
	sc.root = d
	if d.AgentId != stack.Orchestrator.String() || d.RootId != d.Id || d.ParentId != "" ||
		!slices.Equal(d.Scopes, []string{"campaigns:read", "compliance:check"}) ||
		!slices.Equal(d.Chain, []string{stack.Orchestrator.String()}) ||
		d.CreatedBy != stack.Orchestrator.String() || d.MaxDepth != 2 || d.Depth != 1 ||
		d.Intent != "check the Q3 campaign for GDPR issues" || d.State != delegationv1.State_STATE_ACTIVE {
		t.Fatalf("delegation %s", out)
	}
	if p := d.Principal; p.GetIssuer() != st.Hydra.IssuerURL() || p.GetSubject() != "alice" || p.GetEmail() != "alice@example.com" {
		t.Fatalf("principal %+v, want alice at %s", p, st.Hydra.IssuerURL())
	}
	if ttl := d.ExpiresAt.AsTime().Sub(d.CreatedAt.AsTime()); ttl != 30*time.Minute {
		t.Fatalf("delegation lifetime %s, want the 30m asked", ttl)
	}
	checkAnswer(t, "service's answer to the orchestrator", stdout, stack.Orchestrator, d)

	// The token the agent sent: spire-agent hands the same process
	// identity the same (cached) token for the same audiences.
	r := sc.fetchJWT(t, st.Manifest(t, "orchestrator"), stack.Orchestrator.String(), d.Id, stack.ServiceID.String())
	wantCode(t, "the orchestrator's delegated token for the service", r, "OK", "")
	checkClaims(t, verifyOutside(t, st, r.Token), st, stack.Orchestrator, stack.ServiceID.String(), d, "campaigns:read compliance:check")
}

// step3: the Python example agent, which speaks no SPIFFE, does the same
// through agentid-sidecar: the sidecar is attested as the research
// assistant, creates the delegation with alice's token, and calls the
// service over mTLS through its egress proxy; the agent revokes when done.
func (sc *scenario) step3(t *testing.T) {
	st := sc.st
	python, err := exec.LookPath("python3")
	if err != nil {
		// Every machine this suite runs on has python3: a skip here would
		// let CI pass without the sidecar path ever running.
		t.Fatalf("python3 is not on the PATH: the Python agent cannot run: %v", err)
	}
	begin := time.Now()
	sidecar := st.StartSidecar(t, "research-assistant")
	t.Logf("timing: agentid-sidecar ready as the research assistant in %s", time.Since(begin).Round(time.Millisecond))
	defer sidecar.Stop(t)

	begin = time.Now()
	stdout, stderr, err := st.Exec(t, []string{
		"SIDECAR_URL=" + sidecar.APIURL, "PROXY_URL=" + sidecar.ProxyURL, "ROUTE=crm",
		"USER_TOKEN_FILE=" + sc.alice.TokenFile, "SCOPES=campaigns:read web:search", "TTL=10m",
	}, python, st.RepoPath(t, "examples/python-agent/agent.py"))
	if err != nil {
		t.Fatalf("python agent: %v\nstdout: %s", err, stdout)
	}
	t.Logf("timing: python agent ran in %s", time.Since(begin).Round(time.Millisecond))
	if !strings.Contains(stderr, "agent: "+stack.Research.String()+"\n") {
		t.Fatalf("python agent did not see its identity: %q", stderr)
	}
	id := dlgPattern.FindString(stderr)
	if !strings.Contains(stderr, "delegation: "+id+" for alice scopes campaigns:read web:search\n") ||
		!strings.Contains(stderr, "revoked "+id+"\n") {
		t.Fatalf("python agent's log: %q", stderr)
	}
	out, err := st.CLI(t, nil, "-o", "json", "get", id)
	if err != nil {
		t.Fatalf("agentid get %s: %v", id, err)
	}
	d := stack.ParseDelegation(t, out)
	if d.CreatedBy != stack.Research.String() || d.State != delegationv1.State_STATE_REVOKED || d.RevokeReason != "task done" {
		t.Fatalf("the python agent's delegation after it finished: %s", out)
	}
	checkAnswer(t, "service's answer to the python agent", stdout, stack.Research, d)

	// The agent reads its delegation back through the sidecar, as
	// agentid-server has it: revoked, with the reason it gave.
	var back struct {
		Delegation struct {
			ID           string `json:"id"`
			State        string `json:"state"`
			RevokeReason string `json:"revoke_reason"`
		} `json:"delegation"`
	}
	getJSON(t, sidecar.APIURL+"/v1/delegations/"+id, &back)
	if back.Delegation.ID != id || back.Delegation.State != "revoked" || back.Delegation.RevokeReason != "task done" {
		t.Fatalf("the sidecar's view of %s: %+v", id, back)
	}
	var held struct {
		Delegations []struct {
			ID string `json:"id"`
		} `json:"delegations"`
	}
	getJSON(t, sidecar.APIURL+"/v1/delegations?state=revoked", &held)
	if len(held.Delegations) != 1 || held.Delegations[0].ID != id {
		t.Fatalf("the sidecar lists the research assistant's revoked delegations as %+v, want [%s]", held, id)
	}
}

// step4: the orchestrator passes campaigns:read on to market-analysis; a
// wider grant and a grant to an agent it may not sub-delegate to are
// refused; market-analysis's token names alice and the chain.
func (sc *scenario) step4(t *testing.T) {
	st := sc.st
	orch := st.Manifest(t, "orchestrator")
	out, err := st.CLIAs(t, orch, "-o", "json", "sub-delegate", "-parent", sc.root.Id,
		"-agent", stack.Analyst.String(), "-scope", "campaigns:read", "-ttl", "10m", "-intent", "pull the Q3 campaign figures")
	if err != nil {
		t.Fatalf("orchestrator's CreateSubDelegation: %v", err)
	}
	sub := stack.ParseDelegation(t, out)
	sc.sub = sub
	if sub.ParentId != sc.root.Id || sub.RootId != sc.root.Id || sub.AgentId != stack.Analyst.String() ||
		!slices.Equal(sub.Scopes, []string{"campaigns:read"}) ||
		!slices.Equal(sub.Chain, []string{stack.Orchestrator.String(), stack.Analyst.String()}) ||
		sub.Depth != 2 || sub.CreatedBy != stack.Orchestrator.String() {
		t.Fatalf("sub-delegation %s", out)
	}
	if sub.Principal.GetSubject() != "alice" || sub.Principal.GetIssuer() != st.Hydra.IssuerURL() {
		t.Fatalf("sub-delegation principal %+v, want alice", sub.Principal)
	}

	refusals := []struct {
		name, manifest string
		args           []string
		want           string
	}{{
		name: "wider than the parent", manifest: orch,
		args: []string{"-agent", stack.Analyst.String(), "-scope", "campaigns:read,campaigns:write"},
		want: "agentid: sub-delegate: permissiondenied: delegation: scopes exceed parent's: campaigns:write not held by parent " + sc.root.Id,
	}, {
		name: "beyond the sub-agent's ceiling", manifest: orch,
		args: []string{"-agent", stack.Analyst.String(), "-scope", "web:search"},
		want: "agentid: sub-delegate: permissiondenied: scopes: web:search exceed the ceiling of " + stack.Analyst.String(),
	}, {
		name: "to an agent not among its sub-agents", manifest: orch,
		args: []string{"-agent", stack.Newsletter.String(), "-scope", "campaigns:read"},
		want: "agentid: sub-delegate: permissiondenied: agent_id: " + stack.Newsletter.String() + " is not an allowed sub-agent of " + stack.Orchestrator.String(),
	}, {
		// It may not even learn that the delegation exists.
		name: "by an agent outside the chain", manifest: st.Manifest(t, "newsletter"),
		args: []string{"-agent", stack.Analyst.String(), "-scope", "campaigns:read"},
		want: "agentid: sub-delegate: notfound: parent_id: no such delegation",
	}}
	for _, c := range refusals {
		_, err := st.CLIAs(t, c.manifest, append([]string{"sub-delegate", "-parent", sc.root.Id}, c.args...)...)
		var ce *stack.CommandError
		if !errors.As(err, &ce) || strings.TrimSpace(ce.Stderr) != c.want {
			t.Errorf("sub-delegation %s: %v; want the refusal %q", c.name, err, c.want)
		}
	}

	aud, r := sc.waitToken(t, st.Manifest(t, "market-analysis"), stack.Analyst.String(), sub.Id)
	checkClaims(t, verifyOutside(t, st, r.Token), st, stack.Analyst, aud, sub, "campaigns:read")

	// market-analysis calls the service under the sub-delegation.
	r = st.Probe(t, st.Manifest(t, "market-analysis"), "call", "-url", st.ServiceURL(), "-service-id", stack.ServiceID.String(), "-delegation", sub.Id)
	if r.Code != "OK" || r.Status != http.StatusOK {
		t.Fatalf("market-analysis calling the service: %s %q, HTTP %d %s", r.Code, r.Message, r.Status, r.Body)
	}
	checkAnswer(t, "service's answer to market-analysis", r.Body, stack.Analyst, sub)
	r = sc.fetchJWT(t, st.Manifest(t, "market-analysis"), stack.Analyst.String(), sub.Id, stack.ServiceID.String())
	wantCode(t, "market-analysis's delegated token for the service", r, "OK", "")
	sc.subTok = r.Token
}

// step5: no process gets a token under a delegation that is not its
// agent's, and a manifest whose signature no longer verifies earns no
// identity.
func (sc *scenario) step5(t *testing.T) {
	st := sc.st
	news := st.Manifest(t, "newsletter")

	// The newsletter process may not even ask for the orchestrator's SVID.
	r := sc.fetchJWT(t, news, stack.Orchestrator.String(), sc.root.Id, sc.audience())
	wantCode(t, "newsletter asking for the orchestrator's token", r, "PermissionDenied", "no identity issued")
	// Under its own name, with the orchestrator's delegation: the composer
	// refuses, since the delegation belongs to another agent.
	r = sc.fetchJWT(t, news, stack.Newsletter.String(), sc.root.Id, sc.audience())
	wantCode(t, "newsletter presenting the orchestrator's delegation", r, "Unavailable",
		"composer: delegation belongs to another agent: "+sc.root.Id)
	// Nor may the sub-agent use its parent's delegation.
	r = sc.fetchJWT(t, st.Manifest(t, "market-analysis"), stack.Analyst.String(), sc.root.Id, sc.audience())
	wantCode(t, "market-analysis presenting the orchestrator's delegation", r, "Unavailable",
		"composer: delegation belongs to another agent: "+sc.root.Id)

	// A token stolen from market-analysis and replayed over another
	// agent's mTLS connection: the service binds the token to the peer
	// (pkg/verify) and refuses it, whether the thief is outside the chain
	// or is the very agent that delegated to market-analysis.
	for _, thief := range []struct {
		name string
		id   spiffeid.ID
	}{{"newsletter", stack.Newsletter}, {"orchestrator", stack.Orchestrator}} {
		r := st.Probe(t, st.Manifest(t, thief.name), "call", "-url", st.ServiceURL(), "-service-id", stack.ServiceID.String(), "-token", sc.subTok)
		want := httpmw.ErrorBody{Error: "invalid_token",
			Description: fmt.Sprintf("%s: sub %s, peer %s", verify.ErrPeerMismatch, stack.Analyst, thief.id)}
		if r.Code != "OK" || r.Status != http.StatusUnauthorized || errorBody(t, r.Body) != want {
			t.Fatalf("%s replaying market-analysis's token: %s %q, HTTP %d %s; want HTTP 401 %+v", thief.name, r.Code, r.Message, r.Status, r.Body, want)
		}
	}

	// A tampered copy of the orchestrator's signed manifest: the attestor
	// drops the signer selector, and no entry matches.
	r = st.Probe(t, st.TamperedManifest(t, "orchestrator"), "x509")
	wantCode(t, "process with a tampered orchestrator manifest", r, "PermissionDenied", "no identity issued")
	// The orchestrator's signed manifest and signature copied byte for
	// byte, used by other code (the impostor: not a program the manifest
	// binds): the attestor sees that the process does not run what the
	// signature covers and gives none of the manifest's selectors, so no
	// entry matches. It says why in spire-agent's log.
	copied := st.CopiedManifest(t, "orchestrator")
	r = st.ProbeAs(t, st.Impostor(t), copied, "x509")
	wantCode(t, "other code with a copy of the orchestrator's signed manifest", r, "PermissionDenied", "no identity issued")
	agentLog, err := os.ReadFile(st.Agent.LogPath())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(agentLog, []byte("Process does not run what its agent manifest binds; no selectors")) {
		t.Fatalf("spire-agent log (%s) does not say why the impostor got no selectors", st.Agent.LogPath())
	}
	// The same copy used by a program the manifest binds is the
	// orchestrator's code running: the binding decides, not the file.
	r = st.Probe(t, copied, "x509")
	if r.Code != "OK" || !slices.Equal(r.IDs, []string{stack.Orchestrator.String()}) {
		t.Fatalf("bound program with a copied manifest: %s %q %q", r.Code, r.Message, r.IDs)
	}
	// An unsigned manifest claiming the orchestrator's name, and no
	// manifest at all: nothing either.
	r = st.Probe(t, st.WriteManifest(t, "orchestrator", "anthropic/claude-sonnet-4", false), "x509")
	wantCode(t, "process with an unsigned orchestrator manifest", r, "PermissionDenied", "no identity issued")
	r = st.Probe(t, "", "x509")
	wantCode(t, "process without a manifest", r, "PermissionDenied", "no identity issued")
}

// step6: alice revokes the root with her own token; the cascade takes the
// sub-delegation with it. market-analysis, replaying a token issued before
// the revocation, is refused by the service within a second (the service
// follows agentid-server's watch stream), and neither agent gets a new
// token.
func (sc *scenario) step6(t *testing.T) {
	st := sc.st
	analyst := st.Manifest(t, "market-analysis")

	// market-analysis keeps calling with its token, issued before the
	// revocation, until the service refuses it.
	ready := filepath.Join(t.TempDir(), "accepted")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	replay := st.Command(t, ctx, analyst, "probe", "call", "-url", st.ServiceURL(), "-service-id", stack.ServiceID.String(),
		"-token", sc.subTok, "-until-refused", "20s", "-ready-file", ready)
	var replayOut, replayErr bytes.Buffer
	replay.Stdout, replay.Stderr = &replayOut, &replayErr
	if err := replay.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- replay.Wait() }()
	deadline := time.After(propagationTimeout)
	for {
		if _, err := os.Stat(ready); err == nil {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("market-analysis's token was not accepted before the revocation: %v %s %s", err, replayOut.String(), replayErr.String())
		case <-deadline:
			t.Fatalf("market-analysis's first call was not answered within %s", propagationTimeout)
		case <-time.After(20 * time.Millisecond):
		}
	}

	revoking := time.Now()
	out, err := st.CLI(t, nil, "revoke", "-as-user", "-token-file", sc.alice.TokenFile, "-reason", "campaign review done", sc.root.Id)
	if err != nil {
		t.Fatalf("alice revoking %s: %v", sc.root.Id, err)
	}
	revokeCall := time.Since(revoking)
	if want := fmt.Sprintf("revoked 2 delegation(s): %s %s\n", sc.root.Id, sc.sub.Id); out != want {
		t.Fatalf("revoke printed %q, want %q", out, want)
	}
	if err := <-done; err != nil {
		t.Fatalf("replaying market-analysis's token: %v %s", err, replayErr.String())
	}
	var r stack.ProbeResult
	if err := json.Unmarshal(replayOut.Bytes(), &r); err != nil {
		t.Fatalf("replay output %q: %v", replayOut.String(), err)
	}
	if r.Code != "OK" || r.Status != http.StatusUnauthorized {
		t.Fatalf("service's last answer to the replayed token: %s %q HTTP %d %s (accepted %d times); want HTTP 401", r.Code, r.Message, r.Status, r.Body, r.Accepted)
	}
	// The cascade revokes both in one commit; the service may apply the
	// root's revocation first, so either of the two is named.
	got := errorBody(t, r.Body)
	if got != (httpmw.ErrorBody{Error: "invalid_token", Description: fmt.Sprintf("%s: %s", verify.ErrRevoked, sc.sub.Id)}) &&
		got != (httpmw.ErrorBody{Error: "invalid_token", Description: fmt.Sprintf("%s: root %s of %s", verify.ErrRevoked, sc.root.Id, sc.sub.Id)}) {
		t.Fatalf("the service's refusal %+v does not say that %s or its root %s is revoked", got, sc.sub.Id, sc.root.Id)
	}
	// The clock starts when agentid-server committed the revocation: its
	// revoked_at, taken just before the commit on this same machine's
	// clock, so the figure is an upper bound of the service's lag that
	// leaves out the CLI's start and alice's token check.
	out, err = st.CLI(t, nil, "-o", "json", "get", sc.sub.Id)
	if err != nil {
		t.Fatalf("agentid get %s: %v", sc.sub.Id, err)
	}
	revokedSub := stack.ParseDelegation(t, out)
	if revokedSub.State != delegationv1.State_STATE_REVOKED || !revokedSub.RevokedAt.IsValid() {
		t.Fatalf("market-analysis's delegation after the revocation: %s", out)
	}
	committed := revokedSub.RevokedAt.AsTime()
	lag := r.AnsweredAt.Sub(committed)
	t.Logf("timing: the service refused the pre-revocation token %s after agentid-server committed the revocation (the revoke command took %s, accepted %d calls before); HTTP %d %s",
		lag.Round(time.Millisecond), revokeCall.Round(time.Millisecond), r.Accepted, r.Status, r.Body)
	if lag > time.Second {
		t.Fatalf("the service accepted a revoked delegation's token for %s after the commit, want under 1s", lag)
	}

	for _, c := range []struct {
		manifest string
		agent    spiffeid.ID
		id       string
	}{{st.Manifest(t, "orchestrator"), stack.Orchestrator, sc.root.Id}, {analyst, stack.Analyst, sc.sub.Id}} {
		lag := sc.waitRefused(t, c.manifest, c.agent.String(), c.id, "composer: delegation is revoked: "+c.id)
		t.Logf("timing: %s refused new tokens under %s within %s", c.agent, c.id, lag.Round(time.Millisecond))
	}
}

// errorBody decodes a refusal of the example service (pkg/verify/httpmw)
// strictly.
func errorBody(t *testing.T, body string) httpmw.ErrorBody {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(body))
	dec.DisallowUnknownFields()
	var got httpmw.ErrorBody
	if err := dec.Decode(&got); err != nil {
		t.Fatalf("the service's refusal %q: %v", body, err)
	}
	return got
}

// dlgPattern finds a delegation id in a program's output.
var dlgPattern = regexp.MustCompile(`dlg_[0-9a-z]{26}`)

// checkAnswer decodes the example service's /whoami answer strictly and
// compares it with delegation d held by agent.
func checkAnswer(t *testing.T, what, body string, agent spiffeid.ID, d *delegationv1.Delegation) {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(body))
	dec.DisallowUnknownFields()
	var got whoami.Answer
	if err := dec.Decode(&got); err != nil {
		t.Fatalf("%s: %v: %q", what, err, body)
	}
	want := whoami.Answer{
		Agent:  agent.String(),
		User:   whoami.User{Issuer: d.Principal.GetIssuer(), Subject: d.Principal.GetSubject(), Email: d.Principal.GetEmail()},
		Scopes: d.Scopes,
		Delegation: whoami.Delegation{ID: d.Id, Root: d.RootId, Chain: d.Chain,
			ExpiresAt: d.ExpiresAt.AsTime().UTC().Truncate(time.Second)},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s\n got %+v\nwant %+v", what, got, want)
	}
}
