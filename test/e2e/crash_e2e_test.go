//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/agentid/agentid/pkg/audit"
	delegationv1 "github.com/agentid/agentid/proto/agentid/delegation/v1"
	"github.com/agentid/agentid/test/e2e/stack"
)

// step8: agentid-server dies with SIGKILL while delegations are being
// created and comes back. Every delegation it acknowledged is there after
// the restart, the audit log before the crash is a prefix of the one after
// and its chain verifies, the composer refuses delegated tokens once its
// replica is stale (plain tokens keep flowing) and issues again once the
// server is back, and the issuances it approved meanwhile reach the log.
func (sc *scenario) step8(t *testing.T) {
	st := sc.st
	orch := st.Manifest(t, "orchestrator")
	client := localClient(t, st)
	create := func(ctx context.Context, agent string, scopes ...string) (*delegationv1.Delegation, error) {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		resp, err := client.CreateDelegation(ctx, &delegationv1.CreateDelegationRequest{
			UserToken: sc.alice.IDToken, AgentId: agent, Scopes: scopes, Ttl: durationpb.New(20 * time.Minute),
			Intent: "crash test",
		})
		return resp.GetDelegation(), err
	}

	// A live delegation for the orchestrator, to watch the composer by.
	live, err := create(context.Background(), stack.Orchestrator.String(), "campaigns:read")
	if err != nil {
		t.Fatalf("create the orchestrator's delegation: %v", err)
	}
	sc.waitToken(t, orch, stack.Orchestrator.String(), live.Id)

	// Writers create delegations as fast as the server takes them.
	var (
		mu    sync.Mutex
		acked []string
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	// killed is set once agentid-server is dead; refused[i] once writer i
	// had a create, begun after that, refused.
	var killed atomic.Bool
	var refused [2]atomic.Bool
	for i := range refused {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				after := killed.Load()
				d, err := create(context.Background(), stack.Newsletter.String(), "campaigns:read")
				if err != nil {
					if after {
						refused[i].Store(true)
					}
					time.Sleep(20 * time.Millisecond)
					continue
				}
				mu.Lock()
				acked = append(acked, d.Id)
				mu.Unlock()
			}
		}()
	}
	ackedNow := func() int { mu.Lock(); defer mu.Unlock(); return len(acked) }
	deadline := time.Now().Add(30 * time.Second)
	for ackedNow() < 10 {
		if time.Now().After(deadline) {
			close(stop)
			wg.Wait()
			t.Fatalf("only %d delegations created in 30 s before the crash", ackedNow())
		}
		time.Sleep(10 * time.Millisecond)
	}
	before := sc.exportAudit(t)

	st.Server.Kill(t)
	killed.Store(true)
	killedAt := time.Now()
	t.Logf("agentid-server killed with SIGKILL after %d acknowledged creates", ackedNow())
	// The writers go on until each has seen a create refused: the server
	// is gone for them too, and nothing they were sent is in flight.
	for !refused[0].Load() || !refused[1].Load() {
		if time.Since(killedAt) > 15*time.Second {
			close(stop)
			wg.Wait()
			t.Fatalf("the writers saw no refused create within 15s of the kill")
		}
		time.Sleep(10 * time.Millisecond)
	}
	close(stop)
	wg.Wait()

	// Plain JWT-SVIDs do not depend on agentid-server.
	r := st.Probe(t, orch, "jwt", "-spiffe-id", stack.Orchestrator.String(), "-audience", sc.audience())
	wantCode(t, "plain JWT-SVID while agentid-server is down", r, "OK", "")
	// Delegated ones fail closed once the replica is stale.
	var issuedWhileDown []string
	var refusal stack.ProbeResult
	bound := stack.DefaultMaxStaleness + 15*time.Second
	for {
		aud := sc.audience()
		r := sc.fetchJWT(t, orch, stack.Orchestrator.String(), live.Id, aud)
		if r.Code != "OK" {
			refusal = r
			break
		}
		issuedWhileDown = append(issuedWhileDown, aud)
		if time.Since(killedAt) > bound {
			t.Fatalf("composer still issued delegated tokens %s after agentid-server died (max_staleness %s)", bound, stack.DefaultMaxStaleness)
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("timing: composer failed closed %s after the kill (max_staleness %s), having issued %d tokens meanwhile",
		time.Since(killedAt).Round(time.Millisecond), stack.DefaultMaxStaleness, len(issuedWhileDown))
	wantCode(t, "delegated token with agentid-server down", refusal, "Unavailable", "composer: delegation replica is stale")

	restarted := time.Now()
	st.Server.Start(t)
	st.WaitServerReady(t)
	t.Logf("timing: agentid-server ready %s after restart", time.Since(restarted).Round(time.Millisecond))
	st.WaitProbe(t, "composer issuing again after the restart", 30*time.Second,
		func(r stack.ProbeResult) bool { return r.Code == "OK" },
		orch, "jwt", "-spiffe-id", stack.Orchestrator.String(), "-audience", sc.audience(), "-audience", markerOf(t, live.Id))
	t.Logf("timing: composer issuing again %s after restart", time.Since(restarted).Round(time.Millisecond))
	// The service's revocation watch is back too: it serves the agent.
	r = st.WaitProbe(t, "the service answering the orchestrator after the restart", 30*time.Second,
		func(r stack.ProbeResult) bool { return r.Code == "OK" && r.Status == http.StatusOK },
		orch, "call", "-url", st.ServiceURL(), "-service-id", stack.ServiceID.String(), "-delegation", live.Id)
	checkAnswer(t, "service's answer after the restart", r.Body, stack.Orchestrator, live)
	t.Logf("timing: the service served a delegated call again %s after restart", time.Since(restarted).Round(time.Millisecond))

	// Every acknowledged create survived. A new connection: the old one's
	// channel is in gRPC's reconnect backoff after the outage.
	client = localClient(t, st)
	for _, id := range acked {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		resp, err := client.GetDelegation(ctx, &delegationv1.GetDelegationRequest{Id: id})
		cancel()
		if err != nil || resp.Delegation.State != delegationv1.State_STATE_ACTIVE {
			t.Errorf("acknowledged delegation %s after the restart: %v %v", id, resp.GetDelegation().GetState(), err)
		}
	}

	// The log before the crash is a prefix of the log after; the chain
	// verifies; each acknowledged create and each issuance approved
	// while the server was down is in it.
	var after []*audit.Event
	wait := time.Now().Add(20 * time.Second)
	for {
		after = sc.exportAudit(t)
		if missing := missingIssuances(after, issuedWhileDown); len(missing) == 0 {
			break
		} else if time.Now().After(wait) {
			t.Fatalf("token issuances approved while agentid-server was down never reached its audit log: audiences %q", missing)
		}
		time.Sleep(500 * time.Millisecond)
	}
	if len(after) < len(before) {
		t.Fatalf("audit log shrank from %d to %d events", len(before), len(after))
	}
	for i, ev := range before {
		if after[i].Sequence != ev.Sequence || after[i].Hash != ev.Hash {
			t.Fatalf("audit event %d changed across the crash: %s → %s", ev.Sequence, ev.Hash, after[i].Hash)
		}
	}
	created := map[string]bool{}
	for _, ev := range after {
		if ev.Type == audit.TypeDelegationCreated {
			created[ev.DelegationID] = true
		}
	}
	for _, id := range acked {
		if !created[id] {
			t.Errorf("acknowledged delegation %s has no delegation_created event", id)
		}
	}
	t.Logf("%d acknowledged creates, %d audit events before the crash, %d after", len(acked), len(before), len(after))

	sc.archiveAndPrune(t)
}

// archiveAndPrune does what an operator does to keep the audit log's
// volume bounded, on the restarted server: export and verify an archive,
// prune through its head, then check that the log left starts after that
// head, verifies from it and from nothing else, and records the prune.
func (sc *scenario) archiveAndPrune(t *testing.T) {
	st := sc.st
	archive := sc.exportAudit(t)
	head := archive[len(archive)-1].Anchor()
	out, err := st.CLI(t, nil, "audit", "prune", "-through", head.String())
	if want := fmt.Sprintf("pruned %d events; the log now starts after %s\n", len(archive), head); err != nil || out != want {
		t.Fatalf("audit prune: %q %v; want %q", out, err, want)
	}
	stdout, stderr, err := st.Exec(t, nil, st.Bin(t, "agentid"), "-socket", st.LocalSocket, "audit", "export")
	if want := fmt.Sprintf("agentid: the log starts after %s; verify with -from %s\n", head, head); err != nil || stderr != want {
		t.Fatalf("audit export after the prune: stderr %q, %v; want %q", stderr, err, want)
	}
	var rest []*audit.Event
	for ev, err := range audit.ReadJSONL(strings.NewReader(stdout)) {
		if err != nil {
			t.Fatalf("read the export after the prune: %v", err)
		}
		rest = append(rest, ev)
	}
	// The prune's own event follows the head it names (token issuances
	// recorded in between may come first).
	var pruned []*audit.Event
	for _, ev := range rest {
		if ev.Type == audit.TypeAuditPruned {
			pruned = append(pruned, ev)
		}
	}
	if len(rest) == 0 {
		t.Fatal("the log after the prune is empty; want at least the audit_pruned event")
	}
	if rest[0].Sequence != head.Sequence+1 || len(pruned) != 1 ||
		pruned[0].Detail["through_sequence"] != strconv.FormatUint(head.Sequence, 10) ||
		pruned[0].Detail["through_hash"] != head.Hash.String() || pruned[0].Actor != fmt.Sprintf("local:uid:%d", os.Getuid()) {
		t.Fatalf("the log after the prune: first event %d, audit_pruned events %+v; want it to start at %d with one naming %s",
			rest[0].Sequence, pruned, head.Sequence+1, head)
	}
	path := st.ScratchFile(t, "audit-rest.jsonl", []byte(stdout))
	if out, err := st.CLI(t, nil, "audit", "verify", "-from", head.String(), path); err != nil || !strings.HasPrefix(out, "ok: ") {
		t.Fatalf("audit verify -from %s: %q %v", head, out, err)
	}
	_, err = st.CLI(t, nil, "audit", "verify", path)
	want := fmt.Sprintf("agentid: %s: audit: chain broken at sequence %d: first event has sequence %d, expected 1\n", path, head.Sequence+1, head.Sequence+1)
	if ce, ok := errors.AsType[*stack.CommandError](err); !ok || ce.Stderr != want {
		t.Fatalf("audit verify without -from after the prune: %v; want %q", err, want)
	}
	t.Logf("pruned %d audit events through %s; %d left", len(archive), head, len(rest))
}

// localClient is a DelegationService client on agentid-server's local
// socket, closed when the test ends.
func localClient(t *testing.T, st *stack.Stack) delegationv1.DelegationServiceClient {
	t.Helper()
	conn, err := grpc.NewClient("unix://"+st.LocalSocket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return delegationv1.NewDelegationServiceClient(conn)
}

func missingIssuances(events []*audit.Event, audiences []string) []string {
	seen := map[string]bool{}
	for _, ev := range events {
		if ev.Type == audit.TypeTokenIssued {
			seen[ev.Detail["audience"]] = true
		}
	}
	var missing []string
	for _, a := range audiences {
		if !seen[a] {
			missing = append(missing, a)
		}
	}
	return missing
}

// exportAudit exports the audit log with the CLI, checks it with `agentid
// audit verify` (offline, as an auditor would) and returns its events.
func (sc *scenario) exportAudit(t *testing.T) []*audit.Event {
	t.Helper()
	out, err := sc.st.CLI(t, nil, "audit", "export")
	if err != nil {
		t.Fatalf("audit export: %v", err)
	}
	path := sc.st.ScratchFile(t, "audit.jsonl", []byte(out))
	verified, err := sc.st.CLI(t, nil, "audit", "verify", path)
	if err != nil || !strings.HasPrefix(verified, "ok: ") || !strings.Contains(verified, "chain intact") {
		t.Fatalf("audit verify: %q %v", verified, err)
	}
	var events []*audit.Event
	for ev, err := range audit.ReadJSONL(bytes.NewReader([]byte(out))) {
		if err != nil {
			t.Fatalf("read audit export: %v", err)
		}
		events = append(events, ev)
	}
	_ = os.Remove(path)
	return events
}
