package delegation_test

import (
	"strings"
	"testing"

	"github.com/agentid/agentid/pkg/delegation"
)

// FuzzParseID checks that every accepted id is canonical: it prints back to
// the same text and has the fixed length.
func FuzzParseID(f *testing.F) {
	for _, s := range []string{"", "dlg_", "dlg_" + strings.Repeat("0", 26), "dlg_7zzzzzzzzzzzzzzzzzzzzzzzzz", "dlg_8zzzzzzzzzzzzzzzzzzzzzzzzz", "DLG_00000000000000000000000000"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := delegation.ParseID(s)
		if err != nil {
			return
		}
		if id.String() != s || len(s) != delegation.IDLength {
			t.Fatalf("accepted non-canonical id %q", s)
		}
	})
}

// FuzzParseScopeString checks that an accepted scope string re-encodes to a
// string that parses to the same set, and that no scope has a space.
func FuzzParseScopeString(f *testing.F) {
	for _, s := range []string{"", "a", "a b", "a  b", "campaigns:read compliance:check", "x\x00", "é"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		set, err := delegation.ParseScopeString(s)
		if err != nil {
			return
		}
		again, err := delegation.ParseScopeString(set.String())
		if err != nil || !again.Equal(set) {
			t.Fatalf("re-encoding %q gave %q: %v", s, set.String(), err)
		}
		for _, sc := range set.Strings() {
			if strings.ContainsAny(sc, " \t\r\n") || len(sc) > delegation.MaxScopeLength {
				t.Fatalf("accepted bad scope %q", sc)
			}
		}
	})
}
