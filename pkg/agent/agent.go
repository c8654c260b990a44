package agent

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/agentid/agentid/pkg/delegation"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// Agent is one declared agent.
type Agent struct {
	// Name identifies the agent in the configuration, in AgentService and in
	// the SPIRE entry id derived from it (renaming an agent replaces its
	// entry): 1-63 characters of a-z, 0-9 and '-'.
	Name string
	// SPIFFEID is the identity the agent's processes receive.
	SPIFFEID spiffeid.ID
	// ParentID is the SPIRE agent (node) or node alias the processes run
	// under.
	ParentID spiffeid.ID
	// Selectors must all match a process for it to get the identity; at
	// least one is of the agent attestor's type, so that a process the
	// attestor did not vouch for gets no identity.
	Selectors []Selector
	// ScopeCeiling is every scope the agent may ever hold: no policy rule
	// and no sub-delegation grants past it.
	ScopeCeiling delegation.ScopeSet
	// SubAgents are the agents it may sub-delegate to, matched exactly.
	SubAgents []spiffeid.ID
	// X509SVIDTTL and JWTSVIDTTL go into the SPIRE entry (zero: SPIRE's
	// default). A delegated token lives at most JWTSVIDTTL, so it bounds the
	// revocation lag of verifiers that do not watch.
	X509SVIDTTL time.Duration
	JWTSVIDTTL  time.Duration
}

// MaySubDelegateTo reports whether id is among the agent's declared
// sub-agents. It is an exact match: sub-delegation widens who acts for the
// user, so no pattern or trust-domain wildcard is honoured. A zero id is
// never allowed.
func (a *Agent) MaySubDelegateTo(id spiffeid.ID) bool {
	return !id.IsZero() && slices.Contains(a.SubAgents, id)
}

// Selector is one attestation property a workload must present, such as
// aiagent:name:gdpr-compliance (Type "aiagent", Value "name:gdpr-compliance").
type Selector struct {
	// Type is the attestor's name; it never contains ':'.
	Type string
	// Value is everything after the first ':'.
	Value string
}

// String returns the selector as SPIRE prints it, type:value.
func (s Selector) String() string {
	return s.Type + ":" + s.Value
}

// ParseSelector parses "type:value"; both parts are required.
func ParseSelector(s string) (Selector, error) {
	typ, value, ok := strings.Cut(s, ":")
	if !ok || typ == "" || value == "" {
		return Selector{}, errors.New("agent: selector must be type:value")
	}
	return Selector{Type: typ, Value: value}, nil
}

// ValidName reports whether s is a valid agent name: 1-63 characters of
// a-z, 0-9 and '-' (it goes into SPIRE entry ids and metric labels).
func ValidName(s string) bool {
	if len(s) == 0 || len(s) > 63 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// Set is the declared agents, looked up by SPIFFE ID or name. It is
// read-only after NewSet and safe for concurrent use.
type Set struct {
	sorted []*Agent // by name
	byID   map[spiffeid.ID]*Agent
	byName map[string]*Agent
}

// NewSet checks that no two agents share a name or a SPIFFE ID and that
// every sub-agent is declared, and returns the set. It keeps copies: later
// changes to agents do not reach it.
func NewSet(agents []Agent) (*Set, error) {
	s := &Set{byID: make(map[spiffeid.ID]*Agent, len(agents)), byName: make(map[string]*Agent, len(agents))}
	for i := range agents {
		a := agents[i]
		a.Selectors = slices.Clone(a.Selectors)
		a.SubAgents = slices.Clone(a.SubAgents)
		switch {
		case !ValidName(a.Name):
			return nil, fmt.Errorf("agent: name %q must be 1-63 characters of a-z, 0-9 and '-'", a.Name)
		case a.SPIFFEID.IsZero():
			return nil, fmt.Errorf("agent: %s: SPIFFE ID is missing", a.Name)
		case s.byName[a.Name] != nil:
			return nil, fmt.Errorf("agent: duplicate agent %q", a.Name)
		case s.byID[a.SPIFFEID] != nil:
			return nil, fmt.Errorf("agent: %s: duplicate SPIFFE ID %s", a.Name, a.SPIFFEID)
		}
		s.byID[a.SPIFFEID], s.byName[a.Name] = &a, &a
		s.sorted = append(s.sorted, &a)
	}
	for _, a := range s.sorted {
		for _, sub := range a.SubAgents {
			if s.byID[sub] == nil {
				return nil, fmt.Errorf("agent: %s: sub-agent %s is not a declared agent", a.Name, sub)
			}
		}
	}
	slices.SortFunc(s.sorted, func(x, y *Agent) int { return strings.Compare(x.Name, y.Name) })
	return s, nil
}

// ByID returns the agent with SPIFFE ID id.
func (s *Set) ByID(id spiffeid.ID) (*Agent, bool) {
	a, ok := s.byID[id]
	return a, ok
}

// ByName returns the agent named name.
func (s *Set) ByName(name string) (*Agent, bool) {
	a, ok := s.byName[name]
	return a, ok
}

// Len is the number of agents.
func (s *Set) Len() int { return len(s.sorted) }

// At returns the i-th agent in name order.
func (s *Set) At(i int) *Agent { return s.sorted[i] }

// Agents returns copies of the agents in name order.
func (s *Set) Agents() []Agent {
	out := make([]Agent, len(s.sorted))
	for i, a := range s.sorted {
		out[i] = *a
	}
	return out
}
