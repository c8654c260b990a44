package reconciler_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/agentid/agentid/pkg/reconciler"
	"github.com/agentid/agentid/pkg/spireapi"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

func TestNewValidatesConfig(t *testing.T) {
	client := spireapi.New(nil)
	for _, tt := range []struct {
		name string
		cfg  reconciler.Config
		want string
	}{
		{name: "no client", cfg: reconciler.Config{}, want: "reconciler: client is required"},
		{
			name: "prefix outside SPIRE's charset",
			cfg:  reconciler.Config{Client: client, Prefix: "agent id/"},
			want: `reconciler: prefix "agent id/" has characters SPIRE refuses in entry ids (allowed: A-Z a-z 0-9 . _ -)`,
		},
		{
			name: "prefix too long",
			cfg:  reconciler.Config{Client: client, Prefix: strings.Repeat("a", 191)},
			want: "reconciler: prefix is 191 bytes, more than 190",
		},
		{
			name: "selector type with a colon",
			cfg:  reconciler.Config{Client: client, SelectorType: "ai:agent"},
			want: `reconciler: selector type "ai:agent" contains ':'`,
		},
		{
			name: "negative interval",
			cfg:  reconciler.Config{Client: client, Interval: -time.Second},
			want: "reconciler: interval -1s is negative",
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := reconciler.New(tt.cfg)
			if fmt.Sprint(err) != tt.want {
				t.Errorf("New error = %v, want %q", err, tt.want)
			}
		})
	}

	if _, err := reconciler.New(reconciler.Config{Client: client, Prefix: strings.Repeat("a", 190)}); err != nil {
		t.Errorf("New with a 190-byte prefix: %v", err)
	}
}

func TestSetAgentsValidates(t *testing.T) {
	other := spiffeid.RequireFromString("spiffe://other.org/node")
	for _, tt := range []struct {
		name   string
		agents func() []reconciler.Agent
		want   string
	}{
		{
			name:   "no name",
			agents: func() []reconciler.Agent { return []reconciler.Agent{agent("")} },
			want:   "reconciler: invalid agent #0: name is empty",
		},
		{
			name:   "name twice",
			agents: func() []reconciler.Agent { return []reconciler.Agent{agent("a"), agent("a", "aiagent:name:b")} },
			want:   `reconciler: invalid agent "a": name is declared twice`,
		},
		{
			name: "no SPIFFE ID",
			agents: func() []reconciler.Agent {
				a := agent("a")
				a.SPIFFEID = spiffeid.ID{}
				return []reconciler.Agent{a}
			},
			want: `reconciler: invalid agent "a": SPIFFE ID is missing`,
		},
		{
			name: "no parent ID",
			agents: func() []reconciler.Agent {
				a := agent("a")
				a.ParentID = spiffeid.ID{}
				return []reconciler.Agent{a}
			},
			want: `reconciler: invalid agent "a": parent ID is missing`,
		},
		{
			name: "SPIFFE ID without a path",
			agents: func() []reconciler.Agent {
				a := agent("a")
				a.SPIFFEID = spiffeid.RequireFromPath(td, "")
				return []reconciler.Agent{a}
			},
			want: `reconciler: invalid agent "a": SPIFFE ID "spiffe://example.org" has no path`,
		},
		{
			name: "SPIFFE ID in SPIRE's namespace",
			agents: func() []reconciler.Agent {
				a := agent("a")
				a.SPIFFEID = spiffeid.RequireFromPath(td, "/spire/agent/x")
				return []reconciler.Agent{a}
			},
			want: `reconciler: invalid agent "a": SPIFFE ID "spiffe://example.org/spire/agent/x" is in SPIRE's reserved /spire namespace`,
		},
		{
			name: "parent in another trust domain",
			agents: func() []reconciler.Agent {
				a := agent("a")
				a.ParentID = other
				return []reconciler.Agent{a}
			},
			want: `reconciler: invalid agent "a": parent ID "spiffe://other.org/node" is not in the trust domain of "spiffe://example.org/agent/a"`,
		},
		{
			name: "no selectors",
			agents: func() []reconciler.Agent {
				a := agent("a")
				a.Selectors = nil
				return []reconciler.Agent{a}
			},
			want: `reconciler: invalid agent "a": no selectors`,
		},
		{
			name:   "no selector of the attestor's type",
			agents: func() []reconciler.Agent { return []reconciler.Agent{agent("a", "unix:uid:1000")} },
			want:   `reconciler: invalid agent "a": no selector of type "aiagent": a process the agent attestor did not recognise would get the identity`,
		},
		{
			name:   "selector without value",
			agents: func() []reconciler.Agent { return []reconciler.Agent{agent("a", "aiagent:name:a", "unix:")} },
			want:   `reconciler: invalid agent "a": selector "unix:" has no value`,
		},
		{
			name:   "selector without type",
			agents: func() []reconciler.Agent { return []reconciler.Agent{agent("a", "aiagent:name:a", ":x")} },
			want:   `reconciler: invalid agent "a": selector ":x" has no type`,
		},
		{
			name:   "repeated selector",
			agents: func() []reconciler.Agent { return []reconciler.Agent{agent("a", "aiagent:name:a", "aiagent:name:a")} },
			want:   `reconciler: invalid agent "a": selector "aiagent:name:a" is repeated`,
		},
		{
			name: "selector type with a colon",
			agents: func() []reconciler.Agent {
				a := agent("a")
				a.Selectors = append(a.Selectors, spireapi.Selector{Type: "a:b", Value: "c"})
				return []reconciler.Agent{a}
			},
			want: `reconciler: invalid agent "a": selector type "a:b" contains ':'`,
		},
		{
			name: "sub-second TTL",
			agents: func() []reconciler.Agent {
				a := agent("a")
				a.JWTSVIDTTL = 1500 * time.Millisecond
				return []reconciler.Agent{a}
			},
			want: `reconciler: invalid agent "a": JWT-SVID TTL 1.5s is not a whole number of seconds between 0 and 2147483647`,
		},
		{
			name: "negative TTL",
			agents: func() []reconciler.Agent {
				a := agent("a")
				a.X509SVIDTTL = -time.Second
				return []reconciler.Agent{a}
			},
			want: `reconciler: invalid agent "a": X509-SVID TTL -1s is not a whole number of seconds between 0 and 2147483647`,
		},
		{
			name: "two agents SPIRE would see as one entry",
			agents: func() []reconciler.Agent {
				b := agent("b", "aiagent:name:a", "aiagent:version:1")
				b.SPIFFEID = spiffeid.RequireFromPath(td, "/agent/a")
				return []reconciler.Agent{agent("a", "aiagent:version:1", "aiagent:name:a"), b}
			},
			want: `reconciler: invalid agent "b": same SPIFFE ID, parent ID and selectors as agent "a" (SPIRE keeps one such entry)`,
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rec, err := reconciler.New(reconciler.Config{Client: spireapi.New(nil)})
			if err != nil {
				t.Fatal(err)
			}
			err = rec.SetAgents(tt.agents())
			if fmt.Sprint(err) != tt.want {
				t.Errorf("SetAgents error = %v, want %q", err, tt.want)
			}
			if !errors.Is(err, reconciler.ErrInvalidAgent) {
				t.Errorf("error %v does not wrap ErrInvalidAgent", err)
			}
		})
	}
}

func TestSelectorTypeIsConfigurable(t *testing.T) {
	rec, err := reconciler.New(reconciler.Config{Client: spireapi.New(nil), SelectorType: "agentattestor"})
	if err != nil {
		t.Fatal(err)
	}
	if err := rec.SetAgents([]reconciler.Agent{agent("a", "agentattestor:name:a")}); err != nil {
		t.Errorf("SetAgents with the configured type: %v", err)
	}
	want := `reconciler: invalid agent "a": no selector of type "agentattestor": a process the agent attestor did not recognise would get the identity`
	if err := rec.SetAgents([]reconciler.Agent{agent("a")}); fmt.Sprint(err) != want {
		t.Errorf("SetAgents with the default type = %v, want %q", err, want)
	}
}

// TestEntryIDs pins the derivation: changing it would replace every entry on
// upgrade. The hashes are sha256sum's first 16 hex digits of the name.
func TestEntryIDs(t *testing.T) {
	for _, tt := range []struct {
		name, prefix, want string
	}{
		{"gdpr-compliance", "", "agentid-gdpr-compliance.267b944557717480"},
		{"GDPR Compliance", "", "agentid-gdpr-compliance.34906b90225c401c"},
		{"gdpr compliance", "", "agentid-gdpr-compliance.5caa9e0c83f55000"},
		{"Ünïcode/agent", "", "agentid--n-code-agent.1c955d58f751ce7d"},
		{"a-very-long-agent-name-that-goes-on-and-on-beyond-forty-eight-characters", "", "agentid-a-very-long-agent-name-that-goes-on-and-on-beyon.42afa572168c1e24"},
		{"gdpr-compliance", "prod.", "prod.gdpr-compliance.267b944557717480"},
	} {
		rec, err := reconciler.New(reconciler.Config{Client: spireapi.New(nil), Prefix: tt.prefix})
		if err != nil {
			t.Fatal(err)
		}
		a := agent(tt.name, "aiagent:name:x")
		a.SPIFFEID = spiffeid.RequireFromPath(td, "/agent/x")
		if err := rec.SetAgents([]reconciler.Agent{a}); err != nil {
			t.Fatal(err)
		}
		if st, _ := rec.State(tt.name); st.EntryID != tt.want {
			t.Errorf("entry id of %q = %q, want %q", tt.name, st.EntryID, tt.want)
		}
	}
}
