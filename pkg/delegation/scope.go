package delegation

import (
	"fmt"
	"slices"
	"strings"
)

// MaxScopeLength bounds one scope in bytes.
const MaxScopeLength = 128

// MaxScopes bounds the size of a scope set, so one request cannot make every
// token and every stored record arbitrarily large.
const MaxScopes = 64

// Scope is one unit of authority, e.g. "campaigns:read". The grammar is a
// strict subset of RFC 6749's scope-token: it starts with a letter or digit and
// continues with letters, digits and ":._-/"; at most MaxScopeLength bytes.
// Spaces are excluded because the token carries scopes space-separated
// (RFC 8693 §4.2), and quotes, backslashes and control characters because
// scopes end up in logs, headers and policy expressions.
type Scope struct {
	s string
}

// ParseScope validates one scope.
func ParseScope(s string) (Scope, error) {
	if problem := scopeProblem(s); problem != "" {
		return Scope{}, fmt.Errorf("%w: %s", ErrInvalidScope, problem)
	}
	return Scope{s: s}, nil
}

// scopeProblem describes what is wrong with s, or returns "".
func scopeProblem(s string) string {
	if s == "" {
		return "empty"
	}
	if len(s) > MaxScopeLength {
		return fmt.Sprintf("%d bytes, at most %d", len(s), MaxScopeLength)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if alnum || i > 0 && strings.IndexByte(":._-/", c) >= 0 {
			continue
		}
		return fmt.Sprintf("%s at byte %d", describeByte(c), i)
	}
	return ""
}

func describeByte(c byte) string {
	switch {
	case c == ' ' || c == '\t' || c == '\n' || c == '\r':
		return "whitespace"
	case c < 0x20 || c == 0x7f:
		return "control character"
	case c >= 0x80:
		return "non-ASCII byte"
	default:
		return fmt.Sprintf("character %q", c)
	}
}

// String returns the scope's text.
func (s Scope) String() string { return s.s }

// ScopeSet is a sorted set of distinct scopes. The zero value is the empty set.
type ScopeSet struct {
	scopes []Scope // sorted, distinct
}

// ParseScopes validates a list of scopes and returns them as a set; duplicates
// collapse. An empty list is an empty set: callers that need at least one
// scope check IsEmpty.
func ParseScopes(list []string) (ScopeSet, error) {
	if len(list) > MaxScopes {
		return ScopeSet{}, fmt.Errorf("%w: %d scopes, at most %d", ErrInvalidScope, len(list), MaxScopes)
	}
	scopes := make([]Scope, 0, len(list))
	for i, s := range list {
		if problem := scopeProblem(s); problem != "" {
			return ScopeSet{}, fmt.Errorf("%w: scope %d: %s", ErrInvalidScope, i, problem)
		}
		scopes = append(scopes, Scope{s: s})
	}
	return newScopeSet(scopes), nil
}

// ParseScopeString parses the space-separated form used in the token's
// "scope" claim. Exactly one space separates scopes; leading, trailing or
// doubled spaces are malformed.
func ParseScopeString(s string) (ScopeSet, error) {
	if s == "" {
		return ScopeSet{}, nil
	}
	return ParseScopes(strings.Split(s, " "))
}

// MustParseScopes is ParseScopes for constants in tests and examples.
func MustParseScopes(list ...string) ScopeSet {
	set, err := ParseScopes(list)
	if err != nil {
		panic(err)
	}
	return set
}

func newScopeSet(scopes []Scope) ScopeSet {
	slices.SortFunc(scopes, func(a, b Scope) int { return strings.Compare(a.s, b.s) })
	scopes = slices.CompactFunc(scopes, func(a, b Scope) bool { return a.s == b.s })
	return ScopeSet{scopes: scopes}
}

// Len is the number of scopes.
func (s ScopeSet) Len() int { return len(s.scopes) }

// IsEmpty reports whether the set holds no scope.
func (s ScopeSet) IsEmpty() bool { return len(s.scopes) == 0 }

// Contains reports whether the set holds scope.
func (s ScopeSet) Contains(scope Scope) bool {
	_, ok := slices.BinarySearchFunc(s.scopes, scope.s, func(a Scope, t string) int { return strings.Compare(a.s, t) })
	return ok
}

// SubsetOf reports whether every scope of s is in other.
func (s ScopeSet) SubsetOf(other ScopeSet) bool {
	return len(s.Minus(other).scopes) == 0
}

// Minus returns the scopes of s that are not in other.
func (s ScopeSet) Minus(other ScopeSet) ScopeSet {
	var out []Scope
	for _, sc := range s.scopes {
		if !other.Contains(sc) {
			out = append(out, sc)
		}
	}
	return ScopeSet{scopes: out}
}

// Intersect returns the scopes in both s and other.
func (s ScopeSet) Intersect(other ScopeSet) ScopeSet {
	var out []Scope
	for _, sc := range s.scopes {
		if other.Contains(sc) {
			out = append(out, sc)
		}
	}
	return ScopeSet{scopes: out}
}

// Equal reports whether both sets hold the same scopes.
func (s ScopeSet) Equal(other ScopeSet) bool {
	return slices.Equal(s.scopes, other.scopes)
}

// Strings returns the scopes in sorted order.
func (s ScopeSet) Strings() []string {
	out := make([]string, len(s.scopes))
	for i, sc := range s.scopes {
		out[i] = sc.s
	}
	return out
}

// String returns the space-separated form of the token's "scope" claim.
func (s ScopeSet) String() string {
	return strings.Join(s.Strings(), " ")
}
