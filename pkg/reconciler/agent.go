package reconciler

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"github.com/agentid/agentid/pkg/agent"
	"math"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/agentid/agentid/pkg/spireapi"
)

// Agent is the declared agent (pkg/agent). The reconciler reads what SPIRE
// needs of it: Name (the entry id is derived from it, so renaming an agent
// replaces its entry), SPIFFEID, ParentID, Selectors (at least one of the
// agent attestor's type, Config.SelectorType, so that a process the attestor
// did not vouch for gets no identity) and the SVID lifetimes (whole seconds;
// zero means SPIRE's default). Its scope ceiling and sub-agents are
// agentid's, not SPIRE's.
type Agent = agent.Agent

// Entry id layout: prefix, up to readableMax characters of the name made safe
// for SPIRE, '.', and hashHexLen hex digits of the name's SHA-256. The hash
// keeps ids distinct where the readable part is not (case, replaced or
// truncated characters, and databases that compare ids case-insensitively);
// the readable part lets an operator recognise the entry. The derivation must
// never change: entries would be deleted and created again on upgrade.
const (
	readableMax = 48
	hashHexLen  = 16
	// spireEntryIDMax is SPIRE's limit on entry ids (sqlstore).
	spireEntryIDMax = 255
	// maxPrefixLen leaves room for the derived part within SPIRE's limit.
	maxPrefixLen = spireEntryIDMax - readableMax - 1 - hashHexLen
)

// entryID derives an agent's entry id from its name.
func entryID(prefix, name string) string {
	sum := sha256.Sum256([]byte(name))
	var b strings.Builder
	b.WriteString(prefix)
	n := 0
	for _, r := range strings.ToLower(name) {
		if n == readableMax {
			break
		}
		if validEntryIDChar(r) {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
		n++
	}
	b.WriteByte('.')
	b.WriteString(hex.EncodeToString(sum[:])[:hashHexLen])
	return b.String()
}

// validEntryIDChar reports whether SPIRE accepts r in an entry id:
// [-._0-9A-Za-z] (sqlstore's validEntryIDChars).
func validEntryIDChar(r rune) bool {
	switch {
	case r == '-' || r == '.' || r == '_':
		return true
	case r >= '0' && r <= '9', r >= 'A' && r <= 'Z', r >= 'a' && r <= 'z':
		return true
	}
	return false
}

// validateAgent checks what SPIRE would refuse, or what would make the
// reconciler rewrite the entry on every pass, before anything is sent.
func validateAgent(a Agent, selectorType string) error {
	switch {
	case a.SPIFFEID.IsZero():
		return fmt.Errorf("SPIFFE ID is missing")
	case a.ParentID.IsZero():
		return fmt.Errorf("parent ID is missing")
	case a.SPIFFEID.Path() == "":
		return fmt.Errorf("SPIFFE ID %q has no path", a.SPIFFEID)
	case a.SPIFFEID.Path() == "/spire" || strings.HasPrefix(a.SPIFFEID.Path(), "/spire/"):
		return fmt.Errorf("SPIFFE ID %q is in SPIRE's reserved /spire namespace", a.SPIFFEID)
	case a.ParentID.Path() == "":
		return fmt.Errorf("parent ID %q has no path", a.ParentID)
	case !a.ParentID.MemberOf(a.SPIFFEID.TrustDomain()):
		return fmt.Errorf("parent ID %q is not in the trust domain of %q", a.ParentID, a.SPIFFEID)
	}
	if len(a.Selectors) == 0 {
		return fmt.Errorf("no selectors")
	}
	seen := make(map[spireapi.Selector]bool, len(a.Selectors))
	attested := false
	for _, s := range a.Selectors {
		switch {
		case s.Type == "":
			return fmt.Errorf("selector %q has no type", s)
		case strings.Contains(s.Type, ":"):
			return fmt.Errorf("selector type %q contains ':'", s.Type)
		case s.Value == "":
			return fmt.Errorf("selector %q has no value", s)
		case seen[s]:
			return fmt.Errorf("selector %q is repeated", s)
		}
		seen[s] = true
		attested = attested || s.Type == selectorType
	}
	if !attested {
		return fmt.Errorf("no selector of type %q: a process the agent attestor did not recognise would get the identity", selectorType)
	}
	for _, ttl := range []struct {
		name string
		d    time.Duration
	}{{"X509-SVID", a.X509SVIDTTL}, {"JWT-SVID", a.JWTSVIDTTL}} {
		if ttl.d < 0 || ttl.d%time.Second != 0 || ttl.d/time.Second > math.MaxInt32 {
			return fmt.Errorf("%s TTL %s is not a whole number of seconds between 0 and %d", ttl.name, ttl.d, math.MaxInt32)
		}
	}
	return nil
}

// desiredEntry is the entry an agent should have. Every field the agent does
// not set is SPIRE's zero (no admin, no downstream, no federation, no DNS
// names, no expiry), and stays so: update writes every field.
func desiredEntry(prefix string, a Agent) spireapi.Entry {
	sels := slices.Clone(a.Selectors)
	slices.SortFunc(sels, compareSelectors)
	return spireapi.Entry{
		ID:          entryID(prefix, a.Name),
		SPIFFEID:    a.SPIFFEID,
		ParentID:    a.ParentID,
		Selectors:   sels,
		X509SVIDTTL: a.X509SVIDTTL,
		JWTSVIDTTL:  a.JWTSVIDTTL,
	}
}

func compareSelectors(a, b spireapi.Selector) int {
	return cmp.Or(strings.Compare(a.Type, b.Type), strings.Compare(a.Value, b.Value))
}

// sameEntry reports whether have is want as far as SPIRE's behaviour goes:
// selectors and federated trust domains as sets, server-set fields
// (revision, creation time) ignored.
func sameEntry(want, have spireapi.Entry) bool {
	return want.ID == have.ID &&
		want.SPIFFEID == have.SPIFFEID &&
		want.ParentID == have.ParentID &&
		sameSet(want.Selectors, have.Selectors) &&
		want.X509SVIDTTL == have.X509SVIDTTL &&
		want.JWTSVIDTTL == have.JWTSVIDTTL &&
		sameSet(want.FederatesWith, have.FederatesWith) &&
		want.Admin == have.Admin &&
		want.Downstream == have.Downstream &&
		slices.Equal(want.DNSNames, have.DNSNames) &&
		want.StoreSVID == have.StoreSVID &&
		want.Hint == have.Hint &&
		want.ExpiresAt.Equal(have.ExpiresAt)
}

func sameSet[T comparable](a, b []T) bool {
	as := make(map[T]bool, len(a))
	for _, x := range a {
		as[x] = true
	}
	bs := make(map[T]bool, len(b))
	for _, x := range b {
		if !as[x] {
			return false
		}
		bs[x] = true
	}
	return len(as) == len(bs)
}

// similarKey is what SPIRE considers a duplicate entry: SPIFFE ID, parent ID
// and the selector set.
func similarKey(e spireapi.Entry) string {
	sels := slices.Clone(e.Selectors)
	slices.SortFunc(sels, compareSelectors)
	var b strings.Builder
	b.WriteString(e.SPIFFEID.String())
	b.WriteByte(0)
	b.WriteString(e.ParentID.String())
	for _, s := range sels {
		b.WriteByte(0)
		b.WriteString(s.String())
	}
	return b.String()
}

// buildDesired validates agents and returns their entries by name.
func buildDesired(prefix, selectorType string, agents []Agent) (map[string]spireapi.Entry, error) {
	out := make(map[string]spireapi.Entry, len(agents))
	similar := make(map[string]string, len(agents))
	for i, a := range agents {
		switch {
		case a.Name == "":
			return nil, fmt.Errorf("%w #%d: name is empty", ErrInvalidAgent, i)
		case !utf8.ValidString(a.Name):
			return nil, fmt.Errorf("%w #%d: name is not valid UTF-8", ErrInvalidAgent, i)
		}
		if _, dup := out[a.Name]; dup {
			return nil, fmt.Errorf("%w %q: name is declared twice", ErrInvalidAgent, a.Name)
		}
		if err := validateAgent(a, selectorType); err != nil {
			return nil, fmt.Errorf("%w %q: %w", ErrInvalidAgent, a.Name, err)
		}
		e := desiredEntry(prefix, a)
		key := similarKey(e)
		if other, dup := similar[key]; dup {
			return nil, fmt.Errorf("%w %q: same SPIFFE ID, parent ID and selectors as agent %q (SPIRE keeps one such entry)", ErrInvalidAgent, a.Name, other)
		}
		similar[key] = a.Name
		out[a.Name] = e
	}
	return out, nil
}
