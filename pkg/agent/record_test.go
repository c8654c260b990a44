package agent_test

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/agentid/agentid/pkg/agent"
	"github.com/agentid/agentid/pkg/delegation"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

func full() agent.Agent {
	return agent.Agent{Name: "orchestrator", SPIFFEID: orch, ParentID: spiffeid.RequireFromString("spiffe://example.org/spire/agent/node1"),
		Selectors: []agent.Selector{{Type: "aiagent", Value: "name:o"}, {Type: "k8s", Value: "sa:o"}}, ScopeCeiling: delegation.MustParseScopes("crm:read", "crm:write"),
		SubAgents: []spiffeid.ID{writer}, X509SVIDTTL: time.Hour, JWTSVIDTTL: 5 * time.Minute}
}

func TestRecordRoundTrip(t *testing.T) {
	for _, a := range []agent.Agent{full(), {Name: "bare", SPIFFEID: writer}} {
		b, err := agent.Marshal(a)
		if err != nil {
			t.Fatal(err)
		}
		got, err := agent.Unmarshal(b)
		if err != nil {
			t.Fatal(err)
		}
		if got.ScopeCeiling.String() != a.ScopeCeiling.String() {
			t.Fatalf("ceiling %s, want %s", got.ScopeCeiling, a.ScopeCeiling)
		}
		got.ScopeCeiling, a.ScopeCeiling = delegation.ScopeSet{}, delegation.ScopeSet{}
		if !reflect.DeepEqual(got, a) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", got, a)
		}
	}
}

func TestUnmarshalRejects(t *testing.T) {
	good, err := agent.Marshal(full())
	if err != nil {
		t.Fatal(err)
	}
	swap := func(old, new string) []byte { return bytes.Replace(good, []byte(old), []byte(new), 1) }
	tests := []struct {
		name string
		in   []byte
		want string
	}{
		{"not JSON", []byte("{"), "agent: malformed record: unexpected EOF"},
		{"unknown field", swap(`"v":1`, `"v":1,"admin":true`), `agent: malformed record: json: unknown field "admin"`},
		{"trailing data", append(append([]byte{}, good...), []byte(" {}")...), "agent: malformed record: data after the object"},
		{"version", swap(`"v":1`, `"v":2`), "agent: record version 2 is not 1"},
		{"name", swap(`"name":"orchestrator"`, `"name":"Orchestrator"`), `agent: record name "Orchestrator" is not a valid agent name`},
		{"spiffe id", swap(`spiffe://example.org/agent/orchestrator`, `agent/orchestrator`), "agent: record orchestrator: spiffe_id: scheme is missing or invalid"},
		{"parent id", swap(`spiffe://example.org/spire/agent/node1`, `node1`), "agent: record orchestrator: parent_id: scheme is missing or invalid"},
		{"selector", swap(`"aiagent:name:o"`, `"aiagent"`), "agent: record orchestrator: agent: selector must be type:value"},
		{"scope", swap(`"crm:read"`, `"crm read"`), "agent: record orchestrator: scope_ceiling: "},
		{"sub-agent", swap(`spiffe://example.org/agent/writer`, `writer`), "agent: record orchestrator: sub_agents: scheme is missing or invalid"},
		{"ttl", swap(`"x509_svid_ttl_seconds":3600`, `"x509_svid_ttl_seconds":-1`), "agent: record orchestrator: SVID lifetimes out of range"},
		{"too large", bytes.Repeat([]byte(" "), agent.MaxRecordSize+1), "agent: record larger than 65536 bytes"},
	}
	for _, tt := range tests {
		if _, err := agent.Unmarshal(tt.in); err == nil || !strings.HasPrefix(err.Error(), tt.want) {
			t.Errorf("%s: Unmarshal = %v, want %q", tt.name, err, tt.want)
		}
	}
}

// FuzzUnmarshal: no input panics, and whatever decodes encodes back to a
// record that decodes to the same agent.
func FuzzUnmarshal(f *testing.F) {
	good, _ := agent.Marshal(full())
	f.Add(good)
	f.Add([]byte(`{"v":1,"name":"a","spiffe_id":"spiffe://x/y"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := agent.Unmarshal(b)
		if err != nil {
			return
		}
		again, err := agent.Marshal(a)
		if err != nil {
			t.Fatal(err)
		}
		b2, err := agent.Unmarshal(again)
		if err != nil {
			t.Fatalf("re-decoding %s: %v", again, err)
		}
		if b2.Name != a.Name || b2.SPIFFEID != a.SPIFFEID || b2.ScopeCeiling.String() != a.ScopeCeiling.String() || len(b2.Selectors) != len(a.Selectors) {
			t.Fatalf("round trip changed %+v into %+v", a, b2)
		}
	})
}
