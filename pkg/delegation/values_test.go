package delegation_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/agentid/agentid/pkg/delegation"
)

func TestNewIDFormat(t *testing.T) {
	for _, seed := range [][]byte{bytes.Repeat([]byte{0}, 16), bytes.Repeat([]byte{0xff}, 16)} {
		id, err := delegation.NewIDFrom(bytes.NewReader(seed))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := delegation.ParseID(id.String()); err != nil {
			t.Fatalf("ParseID(%q): %v", id, err)
		}
	}
	zero, _ := delegation.NewIDFrom(bytes.NewReader(make([]byte, 16)))
	if zero.String() != "dlg_"+strings.Repeat("0", 26) {
		t.Fatalf("all-zero id = %q", zero)
	}
	max, _ := delegation.NewIDFrom(bytes.NewReader(bytes.Repeat([]byte{0xff}, 16)))
	if max.String() != "dlg_7"+strings.Repeat("z", 25) {
		t.Fatalf("all-ones id = %q", max)
	}
	if _, err := delegation.NewIDFrom(bytes.NewReader(make([]byte, 3))); err == nil {
		t.Fatal("short random source must fail")
	}
	a, b := delegation.NewID(), delegation.NewID()
	if a == b {
		t.Fatal("two random ids are equal")
	}
}

func TestParseIDRejects(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", "delegation: invalid delegation id: empty"},
		{"dlg_0123", "delegation: invalid delegation id: length 8, want 30"},
		{"dlx_" + strings.Repeat("0", 26), `delegation: invalid delegation id: missing "dlg_" prefix`},
		{"dlg_" + strings.Repeat("0", 25) + "U", "delegation: invalid delegation id: character 29 is not lower-case base32"},
		{"dlg_" + strings.Repeat("0", 25) + "i", "delegation: invalid delegation id: character 29 is not lower-case base32"},
		{"dlg_8" + strings.Repeat("0", 25), "delegation: invalid delegation id: value exceeds 128 bits"},
	}
	for _, tt := range tests {
		_, err := delegation.ParseID(tt.in)
		if err == nil || err.Error() != tt.want || !errors.Is(err, delegation.ErrInvalidID) {
			t.Errorf("ParseID(%q) = %v, want %q", tt.in, err, tt.want)
		}
	}
}

func TestParseScopeRejects(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", "delegation: invalid scope: empty"},
		{strings.Repeat("a", 129), "delegation: invalid scope: 129 bytes, at most 128"},
		{"a b", "delegation: invalid scope: whitespace at byte 1"},
		{"a\tb", "delegation: invalid scope: whitespace at byte 1"},
		{"a\x00", "delegation: invalid scope: control character at byte 1"},
		{"é", "delegation: invalid scope: non-ASCII byte at byte 0"},
		{`a"b`, `delegation: invalid scope: character '"' at byte 1`},
		{":read", `delegation: invalid scope: character ':' at byte 0`},
	}
	for _, tt := range tests {
		_, err := delegation.ParseScope(tt.in)
		if err == nil || err.Error() != tt.want || !errors.Is(err, delegation.ErrInvalidScope) {
			t.Errorf("ParseScope(%q) = %v, want %q", tt.in, err, tt.want)
		}
	}
	if _, err := delegation.ParseScope(strings.Repeat("a", 128)); err != nil {
		t.Errorf("128-byte scope rejected: %v", err)
	}
}

func TestScopeSetAlgebra(t *testing.T) {
	a := delegation.MustParseScopes("b", "a", "c", "a")
	if got := a.String(); got != "a b c" {
		t.Fatalf("set = %q, want sorted distinct", got)
	}
	b := delegation.MustParseScopes("c", "d")
	if got := a.Intersect(b).String(); got != "c" {
		t.Fatalf("intersect = %q", got)
	}
	if got := a.Minus(b).String(); got != "a b" {
		t.Fatalf("minus = %q", got)
	}
	if !delegation.MustParseScopes("a", "c").SubsetOf(a) || b.SubsetOf(a) {
		t.Fatal("subset wrong")
	}
	if !(delegation.ScopeSet{}).SubsetOf(a) {
		t.Fatal("empty set is a subset of every set")
	}
	parsed, err := delegation.ParseScopeString("c a b")
	if err != nil || !parsed.Equal(a) {
		t.Fatalf("ParseScopeString = %v, %v", parsed, err)
	}
	for _, bad := range []string{" a", "a ", "a  b"} {
		if _, err := delegation.ParseScopeString(bad); err == nil || err.Error() != "delegation: invalid scope: scope 0: empty" && err.Error() != "delegation: invalid scope: scope 1: empty" {
			t.Errorf("ParseScopeString(%q) = %v", bad, err)
		}
	}
	many := make([]string, delegation.MaxScopes+1)
	for i := range many {
		many[i] = "s" + strings.Repeat("x", i)
	}
	if _, err := delegation.ParseScopes(many); err == nil || err.Error() != "delegation: invalid scope: 65 scopes, at most 64" {
		t.Fatalf("too many scopes: %v", err)
	}
}

func TestNewUserRejects(t *testing.T) {
	tests := []struct{ iss, sub, email, want string }{
		{"", "a", "", "delegation: invalid user: issuer is empty"},
		{"idp.example.com", "a", "", "delegation: invalid user: issuer must be an absolute https URL"},
		{"http://idp.example.com", "a", "", "delegation: invalid user: issuer must be an absolute https URL"},
		{"https://idp.example.com", "", "", "delegation: invalid user: subject is empty"},
		{"https://idp.example.com#x", "a", "", "delegation: invalid user: issuer must not have a query or fragment"},
		{"https://idp.example.com?tenant=1", "a", "", "delegation: invalid user: issuer must not have a query or fragment"},
		{"https://idp.example.com", strings.Repeat("s", 256), "", "delegation: invalid user: subject is 256 bytes, at most 255"},
		{"https://idp.example.com", "a\nb", "", "delegation: invalid user: subject contains a control character"},
		{"https://idp.example.com", "a", "\xff", "delegation: invalid user: email is not valid UTF-8"},
	}
	for _, tt := range tests {
		_, err := delegation.NewUser(tt.iss, tt.sub, tt.email)
		if err == nil || err.Error() != tt.want || !errors.Is(err, delegation.ErrInvalidUser) {
			t.Errorf("NewUser(%q,%q,%q) = %v, want %q", tt.iss, tt.sub, tt.email, err, tt.want)
		}
	}
	if _, err := delegation.NewUser("http://127.0.0.1:4444", "alice", ""); err != nil {
		t.Errorf("loopback http issuer rejected: %v", err)
	}
}

func TestParseIntent(t *testing.T) {
	if _, err := delegation.ParseIntent(strings.Repeat("é", 1024)); err != nil {
		t.Fatalf("2048-byte intent rejected: %v", err)
	}
	tests := []struct{ in, want string }{
		{strings.Repeat("a", 2049), "delegation: invalid intent: 2049 bytes, at most 2048"},
		{"a\xffb", "delegation: invalid intent: not valid UTF-8"},
		{"a\x1bb", "delegation: invalid intent: contains a control character"},
	}
	for _, tt := range tests {
		_, err := delegation.ParseIntent(tt.in)
		if err == nil || err.Error() != tt.want {
			t.Errorf("ParseIntent = %v, want %q", err, tt.want)
		}
	}
}
