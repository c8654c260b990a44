package agent_test

import (
	"testing"

	"github.com/agentid/agentid/pkg/agent"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

var (
	orch   = spiffeid.RequireFromString("spiffe://example.org/agent/orchestrator")
	writer = spiffeid.RequireFromString("spiffe://example.org/agent/writer")
	ghost  = spiffeid.RequireFromString("spiffe://example.org/agent/ghost")
)

func TestNewSet(t *testing.T) {
	agents := []agent.Agent{
		{Name: "writer", SPIFFEID: writer},
		{Name: "orchestrator", SPIFFEID: orch, SubAgents: []spiffeid.ID{writer}, Selectors: []agent.Selector{{Type: "aiagent", Value: "name:o"}}},
	}
	s, err := agent.NewSet(agents)
	if err != nil {
		t.Fatal(err)
	}
	agents[1].SubAgents[0] = ghost // the set keeps its own copy
	agents[1].Selectors[0].Value = "changed"
	if s.Len() != 2 || s.At(0).Name != "orchestrator" || s.At(1).Name != "writer" {
		t.Fatalf("order: %v", s.Agents())
	}
	o, ok := s.ByID(orch)
	if !ok || o.Name != "orchestrator" || !o.MaySubDelegateTo(writer) || o.MaySubDelegateTo(ghost) || o.MaySubDelegateTo(spiffeid.ID{}) {
		t.Fatalf("ByID(orch) = %v, %v", o, ok)
	}
	if o.Selectors[0].String() != "aiagent:name:o" {
		t.Fatalf("selector %s", o.Selectors[0])
	}
	if w, ok := s.ByName("writer"); !ok || w.SPIFFEID != writer {
		t.Fatalf("ByName(writer) = %v, %v", w, ok)
	}
	if _, ok := s.ByID(ghost); ok {
		t.Fatal("ByID(ghost) found an agent")
	}
	if _, ok := s.ByName("ghost"); ok {
		t.Fatal("ByName(ghost) found an agent")
	}
	got := s.Agents()
	got[0].Name = "x"
	if s.At(0).Name != "orchestrator" {
		t.Fatal("Agents returned the set's own records")
	}
}

func TestNewSetRejects(t *testing.T) {
	tests := []struct {
		name   string
		agents []agent.Agent
		want   string
	}{
		{"bad name", []agent.Agent{{Name: "Orchestrator", SPIFFEID: orch}}, `agent: name "Orchestrator" must be 1-63 characters of a-z, 0-9 and '-'`},
		{"no id", []agent.Agent{{Name: "o"}}, "agent: o: SPIFFE ID is missing"},
		{"duplicate name", []agent.Agent{{Name: "o", SPIFFEID: orch}, {Name: "o", SPIFFEID: writer}}, `agent: duplicate agent "o"`},
		{"duplicate id", []agent.Agent{{Name: "o", SPIFFEID: orch}, {Name: "p", SPIFFEID: orch}}, "agent: p: duplicate SPIFFE ID spiffe://example.org/agent/orchestrator"},
		{"undeclared sub-agent", []agent.Agent{{Name: "o", SPIFFEID: orch, SubAgents: []spiffeid.ID{ghost}}}, "agent: o: sub-agent spiffe://example.org/agent/ghost is not a declared agent"},
	}
	for _, tt := range tests {
		if _, err := agent.NewSet(tt.agents); err == nil || err.Error() != tt.want {
			t.Errorf("%s: NewSet = %v, want %q", tt.name, err, tt.want)
		}
	}
}

func TestSelectorsAndNames(t *testing.T) {
	for in, want := range map[string]string{"aiagent:name:gdpr": "aiagent:name:gdpr", "unix:uid:0": "unix:uid:0"} {
		s, err := agent.ParseSelector(in)
		if err != nil || s.String() != want {
			t.Errorf("ParseSelector(%q) = %v, %v", in, s, err)
		}
	}
	for _, in := range []string{"", "aiagent", ":x", "aiagent:"} {
		if _, err := agent.ParseSelector(in); err == nil || err.Error() != "agent: selector must be type:value" {
			t.Errorf("ParseSelector(%q) = %v", in, err)
		}
	}
	long := make([]byte, 64)
	for i := range long {
		long[i] = 'a'
	}
	for name, want := range map[string]bool{"gdpr-1": true, "": false, "Gdpr": false, "a_b": false, string(long[:63]): true, string(long): false} {
		if agent.ValidName(name) != want {
			t.Errorf("ValidName(%q) != %v", name, want)
		}
	}
}
