package claims_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/agentid/agentid/pkg/claims"
	"github.com/agentid/agentid/pkg/delegation"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

var (
	t0           = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	orchestrator = spiffeid.RequireFromString("spiffe://example.org/agent/orchestrator")
	analyst      = spiffeid.RequireFromString("spiffe://example.org/agent/market-analysis")
	rootID       = delegation.MustParseID("dlg_01jc0000000000000000000000")
	childID      = delegation.MustParseID("dlg_01jd0000000000000000000000")
)

func child(t testing.TB) *delegation.Delegation {
	t.Helper()
	user, err := delegation.NewUser("https://idp.example.com", "alice", "alice@example.com")
	if err != nil {
		t.Fatal(err)
	}
	root, err := delegation.NewRoot(delegation.RootParams{
		ID: rootID, Agent: orchestrator, User: user, MaxDepth: 2,
		Scopes:    delegation.MustParseScopes("campaigns:read", "compliance:check", "crm:write"),
		CreatedAt: t0, ExpiresAt: t0.Add(11 * time.Hour),
	})
	if err != nil {
		t.Fatal(err)
	}
	d, err := delegation.NewChild(root, delegation.ChildParams{
		ID: childID, Agent: analyst, Scopes: delegation.MustParseScopes("compliance:check", "campaigns:read"),
		CreatedAt: t0, ExpiresAt: t0.Add(10*time.Hour + 500*time.Millisecond),
	})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// The exact JSON a token carries: this is the contract with meshes and
// non-Go verifiers, so it is spelled out rather than derived.
const wantJSON = `{"delegation":{"chain":["spiffe://example.org/agent/orchestrator","spiffe://example.org/agent/market-analysis"],` +
	`"expires_at":"2026-11-26T22:00:00Z","id":"dlg_01jd0000000000000000000000","root":"dlg_01jc0000000000000000000000","version":"1"},` +
	`"principal":{"email":"alice@example.com","iss":"https://idp.example.com","sub":"alice"},` +
	`"scope":"campaigns:read compliance:check"}`

func TestMapExactJSON(t *testing.T) {
	b, err := json.Marshal(claims.FromDelegation(child(t)).Map())
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != wantJSON {
		t.Fatalf("claims JSON\n got %s\nwant %s", b, wantJSON)
	}
}

func decodeJSON(t testing.TB, s string) (claims.Claims, error) {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatal(err)
	}
	return claims.Decode(m, analyst)
}

func TestDecodeRoundTrip(t *testing.T) {
	c, err := decodeJSON(t, wantJSON)
	if err != nil {
		t.Fatal(err)
	}
	if c.ID != childID || c.Root != rootID || c.User.Subject() != "alice" || c.User.Email() != "alice@example.com" ||
		c.Scopes.String() != "campaigns:read compliance:check" || len(c.Chain) != 2 || c.Chain[1] != analyst ||
		!c.ExpiresAt.Equal(t0.Add(10*time.Hour)) {
		t.Fatalf("decoded %+v", c)
	}
}

func TestDecodeRejects(t *testing.T) {
	tests := []struct {
		name, from, to string
		want           string
	}{
		{"no claims", wantJSON, `{"sub":"x"}`, "claims: token has no delegation claims"},
		{"only scope", wantJSON, `{"scope":"a"}`, "claims: malformed delegation claims: principal: not an object"},
		{"scope not string", `"scope":"campaigns:read compliance:check"`, `"scope":["campaigns:read"]`, "claims: malformed delegation claims: scope: not a string"},
		{"scope empty", `"scope":"campaigns:read compliance:check"`, `"scope":""`, "claims: malformed delegation claims: scope: empty"},
		{"scope bad", `"scope":"campaigns:read compliance:check"`, `"scope":"a  b"`, "claims: malformed delegation claims: scope: delegation: invalid scope: scope 1: empty"},
		{"principal unknown member", `"sub":"alice"}`, `"sub":"alice","admin":"yes"}`, `claims: malformed delegation claims: principal: unknown member "admin"`},
		{"principal sub number", `"sub":"alice"`, `"sub":42`, "claims: malformed delegation claims: principal.sub: not a string"},
		{"principal no sub", `,"sub":"alice"`, ``, "claims: malformed delegation claims: principal: delegation: invalid user: subject is empty"},
		{"version", `"version":"1"`, `"version":"2"`, `claims: malformed delegation claims: delegation.version: unsupported version "2"`},
		{"no version", `,"version":"1"`, ``, `claims: malformed delegation claims: delegation.version: unsupported version ""`},
		{"bad id", `"id":"dlg_01jd`, `"id":"dlg_01JD`, "claims: malformed delegation claims: delegation.id: delegation: invalid delegation id: character 6 is not lower-case base32"},
		{"chain not list", `"chain":["spiffe://example.org/agent/orchestrator","spiffe://example.org/agent/market-analysis"]`, `"chain":"x"`,
			"claims: malformed delegation claims: delegation.chain: not a list"},
		{"unknown member", `"chain":[`, `"chain":"x","y":[`, `claims: malformed delegation claims: delegation: unknown member "y"`},
		{"chain repeats an agent", `"chain":["spiffe://example.org/agent/orchestrator"`, `"chain":["spiffe://example.org/agent/market-analysis"`,
			"claims: malformed delegation claims: delegation.chain[1]: agent appears twice"},
		{"root of a sub-delegation equals id", `"root":"dlg_01jc0000000000000000000000"`, `"root":"dlg_01jd0000000000000000000000"`,
			"claims: malformed delegation claims: delegation.root: must equal id exactly when the chain has one agent"},
		{"chain empty", `"chain":["spiffe://example.org/agent/orchestrator","spiffe://example.org/agent/market-analysis"]`, `"chain":[]`,
			"claims: malformed delegation claims: delegation.chain: 0 entries, want 1..16"},
		{"chain entry number", `"chain":["spiffe://example.org/agent/orchestrator"`, `"chain":[7`, "claims: malformed delegation claims: delegation.chain[0]: not a string of at most 2048 bytes"},
		{"chain entry not spiffe", `"chain":["spiffe://example.org/agent/orchestrator"`, `"chain":["https://example.org/x"`,
			"claims: malformed delegation claims: delegation.chain[0]: scheme is missing or invalid"},
		{"chain not ending in sub", `,"spiffe://example.org/agent/market-analysis"]`, `,"spiffe://example.org/agent/writer"]`, "claims: malformed delegation claims: delegation.chain: does not end with the token's subject"},
		{"expiry", `"2026-11-26T22:00:00Z"`, `"tomorrow"`, "claims: malformed delegation claims: delegation.expires_at: not an RFC 3339 time"},
		{"delegation not object", `"delegation":{`, `"delegation":"x","d":{`, "claims: malformed delegation claims: delegation: not an object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !strings.Contains(wantJSON, tt.from) {
				t.Fatalf("fixture lacks %s", tt.from)
			}
			_, err := decodeJSON(t, strings.Replace(wantJSON, tt.from, tt.to, 1))
			if err == nil || err.Error() != tt.want {
				t.Fatalf("err = %v\nwant %s", err, tt.want)
			}
			wantSentinel := claims.ErrMalformed
			if tt.name == "no claims" {
				wantSentinel = claims.ErrNoDelegation
			}
			if !errors.Is(err, wantSentinel) {
				t.Fatalf("err %v is not %v", err, wantSentinel)
			}
		})
	}
}

func TestPathsMatchMap(t *testing.T) {
	m := claims.FromDelegation(child(t)).Map()
	for _, p := range claims.Paths() {
		var cur any = m
		for _, k := range p {
			obj, ok := cur.(map[string]any)
			if !ok {
				t.Fatalf("path %v: %v is not an object", p, cur)
			}
			if cur, ok = obj[k]; !ok {
				t.Fatalf("path %v missing from encoded claims", p)
			}
		}
	}
}

func TestSplitAudience(t *testing.T) {
	marker := claims.Marker(childID)
	tests := []struct {
		name     string
		aud      []string
		wantRest []string
		wantID   delegation.ID
		wantErr  string
	}{
		{"no marker", []string{"svc"}, []string{"svc"}, delegation.ID{}, ""},
		{"marker last", []string{"svc", marker}, []string{"svc"}, childID, ""},
		{"marker first", []string{marker, "a", "b"}, []string{"a", "b"}, childID, ""},
		{"two markers", []string{marker, "svc", claims.Marker(rootID)}, nil, delegation.ID{}, "claims: bad delegation marker: more than one marker audience"},
		{"bad id", []string{"svc", claims.MarkerPrefix + "nope"}, nil, delegation.ID{}, "claims: bad delegation marker: delegation: invalid delegation id: length 4, want 30"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rest, id, err := claims.SplitAudience(tt.aud, claims.MarkerPrefix)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr || !errors.Is(err, claims.ErrMarker) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || id != tt.wantID || strings.Join(rest, ",") != strings.Join(tt.wantRest, ",") {
				t.Fatalf("got %v %v %v", rest, id, err)
			}
		})
	}
}
