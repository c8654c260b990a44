package policy

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/agentid/agentid/pkg/delegation"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// fuzzRules mirrors the rules of the external tests; duplicated here because
// fuzz targets that need maxInput live in the package.
var fuzzRules = []Rule{
	{Name: "marketing", When: `"marketing" in user.groups && agent.id == "spiffe://example.org/agent/gdpr"`,
		Scopes: []string{"campaigns:read", "compliance:check"}, MaxTTL: time.Hour, MaxDepth: 2,
		Callers: []string{"spiffe://example.org/app/chat"}},
	{Name: "staff", When: `user.email.endsWith("@example.com") && size(request.intent) >= 10`,
		Scopes: []string{"docs:read", "docs:write"}, MaxTTL: 15 * time.Minute, MaxDepth: 1,
		Callers: []string{"spiffe://example.org/app/chat", CallerLocal}},
	{Name: "self", When: `request.ttl <= duration("10m")`,
		Scopes: []string{"docs:read", "campaigns:read"}, MaxTTL: 5 * time.Minute, MaxDepth: 1},
}

// FuzzDecide feeds token-derived and caller-chosen values (groups, email,
// intent, scopes, ttl, caller) to Decide and checks what must hold for any
// input: a grant is never empty, never outside ask ∩ ceiling ∩ the rule's
// scopes, never longer than the rule's max TTL; anything else is a denial or
// an invalid-input error.
func FuzzDecide(f *testing.F) {
	f.Add("marketing", "alice@example.com", "check the spring campaign", "campaigns:read docs:write", int64(0), uint8(0))
	f.Add("", "bob@example.com", "summarise the docs", "docs:read", int64(time.Hour), uint8(2))
	f.Add("a,b,marketing", "", "", "docs:read campaigns:read", int64(10*time.Minute), uint8(1))
	f.Add("x", "e", "\x00", "", int64(-1), uint8(3))
	p, err := Compile(fuzzRules)
	if err != nil {
		f.Fatal(err)
	}
	ids := []string{"spiffe://example.org/app/chat", "spiffe://example.org/agent/gdpr", "", "spiffe://example.org/app/other"}
	ceiling := delegation.MustParseScopes("campaigns:read", "compliance:check", "docs:read")
	rules := make(map[string]Rule)
	for _, r := range fuzzRules {
		rules[r.Name] = r
	}
	f.Fuzz(func(t *testing.T, groups, email, intent, scopes string, ttl int64, caller uint8) {
		asked, err := delegation.ParseScopeString(scopes)
		if err != nil {
			return
		}
		var callerID spiffeid.ID
		if s := ids[int(caller)%len(ids)]; s != "" {
			callerID = spiffeid.RequireFromString(s)
		}
		in := Input{
			User:   User{Issuer: "https://idp.example.com", Subject: "alice", Email: email},
			Agent:  Agent{ID: spiffeid.RequireFromString("spiffe://example.org/agent/gdpr"), Name: "gdpr", Ceiling: ceiling},
			Caller: callerID,
			Scopes: asked,
			TTL:    time.Duration(ttl),
			Intent: intent,
		}
		if groups != "" {
			in.User.Groups = strings.Split(groups, ",")
		}
		d, err := p.Decide(context.Background(), in)
		if err != nil {
			if !errors.Is(err, ErrDenied) && !errors.Is(err, ErrInvalidInput) {
				t.Fatalf("Decide: unexpected error %v", err)
			}
			if strings.Contains(err.Error(), "evaluation failed") {
				t.Fatalf("Decide: %v", err)
			}
			return
		}
		r, ok := rules[d.Rule]
		switch {
		case !ok:
			t.Fatalf("grant by unknown rule %q", d.Rule)
		case d.Scopes.IsEmpty():
			t.Fatalf("empty grant %+v", d)
		case !d.Scopes.SubsetOf(asked) || !d.Scopes.SubsetOf(ceiling) || !d.Scopes.SubsetOf(delegation.MustParseScopes(r.Scopes...)):
			t.Fatalf("grant [%s] outside ask [%s] ∩ ceiling [%s] ∩ rule %v", d.Scopes, asked, ceiling, r.Scopes)
		case d.TTL <= 0 || d.TTL > r.MaxTTL:
			t.Fatalf("granted ttl %s outside (0, %s]", d.TTL, r.MaxTTL)
		case in.TTL > 0 && d.TTL > in.TTL:
			t.Fatalf("granted ttl %s above the asked %s", d.TTL, in.TTL)
		case d.MaxDepth != r.MaxDepth:
			t.Fatalf("max depth %d, rule has %d", d.MaxDepth, r.MaxDepth)
		}
	})
}

// FuzzCompile checks that any condition Compile accepts evaluates on the
// largest input Decide accepts without reaching the cost limit: the
// compile-time estimate is what keeps a rule from running away, so it must
// not be beaten by an input within bounds.
func FuzzCompile(f *testing.F) {
	for _, when := range costlyConditions {
		f.Add(when)
	}
	f.Add(`user.groups.map(g, g + g).exists(x, x.size() > 600)`)
	f.Add(`request.intent.replace("t", "tt").contains("x")`)
	f.Add(`user.groups.filter(g, g.startsWith("g")).size() > 600`)
	f.Add(`[1, 2, 3].exists(i, i > 5)`)
	f.Add(`user.email.format([]) == ""`)
	in := maxInput(f)
	f.Fuzz(func(t *testing.T, when string) {
		p, err := Compile([]Rule{{Name: "r", When: when, Scopes: []string{"a"}, MaxTTL: time.Hour, MaxDepth: 1, Callers: []string{CallerLocal}}})
		if err != nil {
			if !strings.HasPrefix(err.Error(), `policy: rule "r": `) {
				t.Fatalf("Compile(%q): error without the rule's name: %v", when, err)
			}
			return
		}
		in := in
		in.Caller = spiffeid.ID{}
		in.Scopes = delegation.MustParseScopes("a")
		_, err = p.Decide(context.Background(), in)
		if err != nil && strings.Contains(err.Error(), "cost limit exceeded") {
			t.Fatalf("Decide(%q) on the max input: %v (estimate %d)", when, err, p.rules[0].maxCost)
		}
	})
}
