package agentclient_test

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/agentid/agentid/pkg/agentclient"
	"github.com/agentid/agentid/pkg/claims"
)

// FuzzCheckAudience: an audience is agent input (the sidecar's ?audience=).
// A refusal is ErrInvalidRequest naming the field; an accepted one is
// bounded UTF-8 without spaces or controls and never a delegation marker.
func FuzzCheckAudience(f *testing.F) {
	for _, s := range []string{"spiffe://example.org/svc/crm", "https://crm.example.org", "crm", "", "a b", "crm\xff",
		claims.MarkerPrefix + "dlg_01jd0000000000000000000000", "127.0.0.1:8443", "://x", "urn:x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, aud string) {
		err := agentclient.CheckAudience(aud)
		if err != nil {
			if !errors.Is(err, agentclient.ErrInvalidRequest) || !strings.HasPrefix(err.Error(), "agentclient: invalid request: audience: ") {
				t.Fatalf("CheckAudience(%q) = %v", aud, err)
			}
			return
		}
		if aud == "" || len(aud) > 2048 || !utf8.ValidString(aud) || strings.ContainsAny(aud, " \t\r\n\x00") || strings.HasPrefix(aud, claims.MarkerPrefix) {
			t.Fatalf("CheckAudience(%q) accepted it", aud)
		}
	})
}
