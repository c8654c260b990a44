package agent

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/agentid/agentid/pkg/delegation"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// MaxRecordSize bounds an encoded agent (the store's registry record).
const MaxRecordSize = 64 << 10

// record is an Agent as the store's agent registry keeps it (store.Agent's
// Spec): JSON with a version, so a later format can tell itself apart.
type record struct {
	Version      int      `json:"v"`
	Name         string   `json:"name"`
	SPIFFEID     string   `json:"spiffe_id"`
	ParentID     string   `json:"parent_id,omitempty"`
	Selectors    []string `json:"selectors,omitempty"`
	ScopeCeiling []string `json:"scope_ceiling,omitempty"`
	SubAgents    []string `json:"sub_agents,omitempty"`
	X509SVIDTTL  int64    `json:"x509_svid_ttl_seconds,omitempty"`
	JWTSVIDTTL   int64    `json:"jwt_svid_ttl_seconds,omitempty"`
}

const recordVersion = 1

// Marshal encodes a for the store's agent registry. SVID lifetimes are kept
// in whole seconds, as SPIRE's entries keep them.
func Marshal(a Agent) ([]byte, error) {
	r := record{Version: recordVersion, Name: a.Name, SPIFFEID: a.SPIFFEID.String(), ScopeCeiling: a.ScopeCeiling.Strings(),
		X509SVIDTTL: int64(a.X509SVIDTTL / time.Second), JWTSVIDTTL: int64(a.JWTSVIDTTL / time.Second)}
	if !a.ParentID.IsZero() {
		r.ParentID = a.ParentID.String()
	}
	for _, s := range a.Selectors {
		r.Selectors = append(r.Selectors, s.String())
	}
	for _, s := range a.SubAgents {
		r.SubAgents = append(r.SubAgents, s.String())
	}
	return json.Marshal(r)
}

// Unmarshal decodes what Marshal encoded, checking every field: a record
// read back from a store is parsed like any other input.
func Unmarshal(b []byte) (Agent, error) {
	if len(b) > MaxRecordSize {
		return Agent{}, fmt.Errorf("agent: record larger than %d bytes", MaxRecordSize)
	}
	var r record
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return Agent{}, fmt.Errorf("agent: malformed record: %w", err)
	}
	if dec.More() {
		return Agent{}, errors.New("agent: malformed record: data after the object")
	}
	if r.Version != recordVersion {
		return Agent{}, fmt.Errorf("agent: record version %d is not %d", r.Version, recordVersion)
	}
	if !ValidName(r.Name) {
		return Agent{}, fmt.Errorf("agent: record name %q is not a valid agent name", r.Name)
	}
	a := Agent{Name: r.Name}
	var err error
	if a.SPIFFEID, err = spiffeid.FromString(r.SPIFFEID); err != nil {
		return Agent{}, fmt.Errorf("agent: record %s: spiffe_id: %w", r.Name, err)
	}
	if r.ParentID != "" {
		if a.ParentID, err = spiffeid.FromString(r.ParentID); err != nil {
			return Agent{}, fmt.Errorf("agent: record %s: parent_id: %w", r.Name, err)
		}
	}
	for _, s := range r.Selectors {
		sel, err := ParseSelector(s)
		if err != nil {
			return Agent{}, fmt.Errorf("agent: record %s: %w", r.Name, err)
		}
		a.Selectors = append(a.Selectors, sel)
	}
	if a.ScopeCeiling, err = delegation.ParseScopes(r.ScopeCeiling); err != nil {
		return Agent{}, fmt.Errorf("agent: record %s: scope_ceiling: %w", r.Name, err)
	}
	for _, s := range r.SubAgents {
		id, err := spiffeid.FromString(s)
		if err != nil {
			return Agent{}, fmt.Errorf("agent: record %s: sub_agents: %w", r.Name, err)
		}
		a.SubAgents = append(a.SubAgents, id)
	}
	const maxSeconds = int64(1<<63-1) / int64(time.Second)
	if r.X509SVIDTTL < 0 || r.JWTSVIDTTL < 0 || r.X509SVIDTTL > maxSeconds || r.JWTSVIDTTL > maxSeconds {
		return Agent{}, fmt.Errorf("agent: record %s: SVID lifetimes out of range", r.Name)
	}
	a.X509SVIDTTL, a.JWTSVIDTTL = time.Duration(r.X509SVIDTTL)*time.Second, time.Duration(r.JWTSVIDTTL)*time.Second
	return a, nil
}
