package claims_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"

	"github.com/agentid/agentid/pkg/claims"
)

// FuzzDecode feeds arbitrary JSON payloads to Decode: it must never panic,
// must only fail with the package's sentinels, and whatever it accepts must
// encode and decode back to the same claims.
func FuzzDecode(f *testing.F) {
	f.Add(wantJSON)
	f.Add(`{}`)
	f.Add(`{"principal":{},"scope":"","delegation":{}}`)
	f.Add(`{"delegation":{"chain":[[[[[]]]]]}}`)
	f.Fuzz(func(t *testing.T, payload string) {
		var m map[string]any
		if json.Unmarshal([]byte(payload), &m) != nil {
			return
		}
		c, err := claims.Decode(m, analyst)
		if err != nil {
			if !errors.Is(err, claims.ErrMalformed) && !errors.Is(err, claims.ErrNoDelegation) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		b, err := json.Marshal(c.Map())
		if err != nil {
			t.Fatal(err)
		}
		var again map[string]any
		if err := json.Unmarshal(b, &again); err != nil {
			t.Fatal(err)
		}
		c2, err := claims.Decode(again, c.Chain[len(c.Chain)-1])
		if err != nil || !reflect.DeepEqual(c2.Map(), c.Map()) {
			t.Fatalf("re-decode differs: %v", err)
		}
	})
}

// FuzzSplitAudience checks that a split never loses or invents an audience.
func FuzzSplitAudience(f *testing.F) {
	f.Add("svc", claims.MarkerPrefix+"dlg_01jd0000000000000000000000")
	f.Add(claims.MarkerPrefix, claims.MarkerPrefix)
	f.Fuzz(func(t *testing.T, a, b string) {
		rest, id, err := claims.SplitAudience([]string{a, b}, claims.MarkerPrefix)
		if err != nil {
			return
		}
		want := 2
		if !id.IsZero() {
			want = 1
		}
		if len(rest) != want {
			t.Fatalf("split [%q %q] gave %d audiences with id %q", a, b, len(rest), id)
		}
	})
}
