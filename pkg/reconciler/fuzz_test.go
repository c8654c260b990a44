package reconciler

import (
	"strings"
	"testing"
)

// FuzzEntryID checks that any agent name gives an id SPIRE accepts, under the
// owned prefix, and that the derivation is a function of the name.
func FuzzEntryID(f *testing.F) {
	for _, s := range []string{"gdpr-compliance", "GDPR Compliance", "Ünïcode/agent", "", strings.Repeat("x", 300), "\xff\xfe"} {
		f.Add(s)
	}
	prefix := strings.Repeat("p", maxPrefixLen)
	f.Fuzz(func(t *testing.T, name string) {
		id := entryID(prefix, name)
		if !strings.HasPrefix(id, prefix) {
			t.Fatalf("id %q lacks the prefix", id)
		}
		if len(id) > spireEntryIDMax {
			t.Fatalf("id %q is %d bytes, SPIRE allows %d", id, len(id), spireEntryIDMax)
		}
		for _, r := range id {
			if !validEntryIDChar(r) {
				t.Fatalf("id %q has %q, which SPIRE refuses", id, r)
			}
		}
		if again := entryID(prefix, name); again != id {
			t.Fatalf("entryID is not deterministic: %q then %q", id, again)
		}
	})
}
