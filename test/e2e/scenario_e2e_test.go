//go:build e2e

package e2e

import (
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/agentid/agentid/pkg/claims"
	"github.com/agentid/agentid/pkg/delegation"
	delegationv1 "github.com/agentid/agentid/proto/agentid/delegation/v1"
	"github.com/agentid/agentid/test/e2e/stack"
)

// Bounds of the waits. Entries reach workloads in about a second (one
// second sync intervals); the rest is headroom for a loaded 2-core machine.
const (
	entryTimeout       = 30 * time.Second
	propagationTimeout = 20 * time.Second
)

// scenario is the state the steps pass on: the stack, the users and the
// delegations made so far.
type scenario struct {
	st    *stack.Stack
	alice stack.User

	root     *delegationv1.Delegation // alice → orchestrator
	sub      *delegationv1.Delegation // orchestrator → market-analysis
	subTok   string                   // market-analysis's delegated token for the service
	audCount int
}

// TestScenario runs the scenario on one stack, step by step.
func TestScenario(t *testing.T) {
	start := time.Now()
	sc := &scenario{st: stack.Start(t, stack.Options{})}
	t.Logf("timing: stack up in %s", time.Since(start).Round(time.Millisecond))

	steps := []struct {
		name string
		fn   func(*testing.T)
	}{
		{"1_declared_agents_get_identities", sc.step1},
		{"2_go_agent_acts_for_user", sc.step2},
		{"3_python_agent_through_sidecar", sc.step3},
		{"4_sub_delegation_narrows", sc.step4},
		{"5_no_identity_theft", sc.step5},
		{"6_revocation", sc.step6},
		{"7_outside_verifier_with_jwks", sc.step7},
		{"8_server_crash", sc.step8},
		{"9_extauthz_in_front_of_the_service", sc.step9},
		{"10_composer_metrics_through_spire", sc.step10},
	}
	failed := ""
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			if failed != "" {
				t.Skipf("step %s failed; this step needs its state", failed)
			}
			begin := time.Now()
			s.fn(t)
			t.Logf("timing: %s in %s", s.name, time.Since(begin).Round(time.Millisecond))
		})
		if failed == "" && t.Failed() {
			failed = s.name
		}
	}
}

// audience returns a service audience never asked for before: spire-agent
// caches JWT-SVIDs by (SPIFFE ID, audiences), and a step that must see what
// the SPIRE server and the composer answer now asks for a new one.
func (sc *scenario) audience() string {
	sc.audCount++
	return stack.ServiceID.String() + "/fresh-" + strconv.Itoa(sc.audCount)
}

// markerOf is the marker audience asking for a token under dlg.
func markerOf(t *testing.T, dlg string) string {
	t.Helper()
	id, err := delegation.ParseID(dlg)
	if err != nil {
		t.Fatalf("delegation id %q: %v", dlg, err)
	}
	return claims.Marker(id)
}

// fetchJWT asks, as a process attested with manifest, for a delegated
// JWT-SVID for agent under dlg with the audience aud.
func (sc *scenario) fetchJWT(t *testing.T, manifest string, agent string, dlg, aud string) stack.ProbeResult {
	t.Helper()
	return sc.st.Probe(t, manifest, "jwt", "-spiffe-id", agent, "-audience", aud, "-audience", markerOf(t, dlg))
}

// waitToken fetches, as a process attested with manifest, a delegated
// token under dlg until SPIRE issues one: a delegation reaches the
// composer's replica over the watch stream a moment after agentid-server
// acknowledged it. It returns the token's audience and the result.
func (sc *scenario) waitToken(t *testing.T, manifest, agent, dlg string) (string, stack.ProbeResult) {
	t.Helper()
	deadline := time.Now().Add(propagationTimeout)
	for {
		aud := sc.audience()
		r := sc.fetchJWT(t, manifest, agent, dlg, aud)
		if r.Code == "OK" {
			return aud, r
		}
		if time.Now().After(deadline) {
			t.Fatalf("no delegated token for %s under %s within %s: last answer %s %q", agent, dlg, propagationTimeout, r.Code, r.Message)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitRefused fetches a delegated token under dlg until SPIRE refuses it
// with a message holding msg, and returns how long that took.
func (sc *scenario) waitRefused(t *testing.T, manifest, agent, dlg, msg string) time.Duration {
	t.Helper()
	begin := time.Now()
	deadline := begin.Add(propagationTimeout)
	for {
		r := sc.fetchJWT(t, manifest, agent, dlg, sc.audience())
		if r.Code != "OK" {
			wantCode(t, "token for "+agent+" under "+dlg, r, "Unavailable", msg)
			return time.Since(begin)
		}
		if time.Now().After(deadline) {
			t.Fatalf("SPIRE still issued tokens for %s under %s %s later; want %q", agent, dlg, propagationTimeout, msg)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func wantCode(t *testing.T, what string, r stack.ProbeResult, code, msgPart string) {
	t.Helper()
	if r.Code != code || !strings.Contains(r.Message, msgPart) {
		t.Fatalf("%s: SPIRE answered %s %q; want %s with %q", what, r.Code, r.Message, code, msgPart)
	}
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}
