package policy_test

import (
	"strings"
	"testing"
	"time"

	"github.com/agentid/agentid/pkg/policy"
)

// goodRule returns a valid rule for the compile tests to break one field of.
func goodRule() policy.Rule {
	return policy.Rule{
		Name:     "r",
		When:     `"marketing" in user.groups`,
		Scopes:   []string{"campaigns:read"},
		MaxTTL:   time.Hour,
		MaxDepth: 2,
		Callers:  []string{chatApp},
	}
}

func TestCompileErrors(t *testing.T) {
	tests := []struct {
		name    string
		modify  func(r *policy.Rule)
		opts    []policy.Option
		wantErr string
	}{
		{"empty name", func(r *policy.Rule) { r.Name = "" }, nil,
			`policy: rules[1]: name is empty`},
		{"name too long", func(r *policy.Rule) { r.Name = strings.Repeat("n", 129) }, nil,
			`policy: rule "` + strings.Repeat("n", 129) + `": name is 129 bytes, at most 128`},
		{"name with a newline", func(r *policy.Rule) { r.Name = "a\nb" }, nil,
			`policy: rule "a\nb": name contains the non-printable character U+000A`},
		{"name not UTF-8", func(r *policy.Rule) { r.Name = "a\xffb" }, nil,
			`policy: rule "a\xffb": name is not valid UTF-8`},
		{"duplicate name", func(r *policy.Rule) { r.Name = "first" }, nil,
			`policy: rule "first": duplicate name`},
		{"bad scope", func(r *policy.Rule) { r.Scopes = []string{"campaigns:read", "docs read"} }, nil,
			`policy: rule "r": scopes: delegation: invalid scope: scope 1: whitespace at byte 4`},
		{"no scopes", func(r *policy.Rule) { r.Scopes = nil }, nil,
			`policy: rule "r": scopes: none`},
		{"zero max_ttl", func(r *policy.Rule) { r.MaxTTL = 0 }, nil,
			`policy: rule "r": max_ttl 0s is not positive`},
		{"negative max_ttl", func(r *policy.Rule) { r.MaxTTL = -time.Minute }, nil,
			`policy: rule "r": max_ttl -1m0s is not positive`},
		{"zero max_depth", func(r *policy.Rule) { r.MaxDepth = 0 }, nil,
			`policy: rule "r": max_depth 0 outside 1..16`},
		{"max_depth above limit", func(r *policy.Rule) { r.MaxDepth = 17 }, nil,
			`policy: rule "r": max_depth 17 outside 1..16`},
		{"caller not a SPIFFE ID", func(r *policy.Rule) { r.Callers = []string{"https://example.org/app"} }, nil,
			`policy: rule "r": callers: "https://example.org/app": scheme is missing or invalid`},
		{"empty when", func(r *policy.Rule) { r.When = "" }, nil,
			`policy: rule "r": when is empty`},
		{"syntax error", func(r *policy.Rule) { r.When = `"marketing" in user.groups &&` }, nil,
			`policy: rule "r": ERROR: when:1:30: Syntax error: mismatched input '<EOF>' expecting {'[', '{', '(', '.', '-', '!', 'true', 'false', 'null', NUM_FLOAT, NUM_INT, NUM_UINT, STRING, BYTES, IDENTIFIER}
 | "marketing" in user.groups &&
 | .............................^`},
		{"not bool", func(r *policy.Rule) { r.When = `user.groups` }, nil,
			`policy: rule "r": when has type list(string), want bool`},
		{"dyn is not bool", func(r *policy.Rule) { r.When = `dyn(user.sub == "alice")` }, nil,
			`policy: rule "r": when has type dyn, want bool`},
		{"unknown variable", func(r *policy.Rule) { r.When = `"marketing" in usr.groups` }, nil,
			`policy: rule "r": ERROR: when:1:16: undeclared reference to 'usr' (in container '')
 | "marketing" in usr.groups
 | ...............^`},
		{"misspelt field", func(r *policy.Rule) { r.When = `"marketing" in user.gruops` }, nil,
			`policy: rule "r": ERROR: when:1:20: undefined field 'gruops'
 | "marketing" in user.gruops
 | ...................^`},
		{"field of the wrong object", func(r *policy.Rule) { r.When = `agent.email == "x"` }, nil,
			`policy: rule "r": ERROR: when:1:6: undefined field 'email'
 | agent.email == "x"
 | .....^`},
		{"type mismatch", func(r *policy.Rule) { r.When = `request.ttl < 3600` }, nil,
			`policy: rule "r": ERROR: when:1:13: found no matching overload for '_<_' applied to '(duration, int)'
 | request.ttl < 3600
 | ............^`},
		{"bad regex literal", func(r *policy.Rule) { r.When = `request.intent.matches("[a-")` }, nil,
			`policy: rule "r": ERROR: when:1:24: invalid matches argument
 | request.intent.matches("[a-")
 | .......................^`},
		{"bad duration literal", func(r *policy.Rule) { r.When = `request.ttl < duration("1 hour")` }, nil,
			`policy: rule "r": ERROR: when:1:24: invalid duration argument
 | request.ttl < duration("1 hour")
 | .......................^`},
		{"expression too long", func(r *policy.Rule) { r.When = "true" + strings.Repeat(" ", policy.MaxExpressionLength) }, nil,
			`policy: rule "r": ERROR: when:-1:0: expression code point size exceeds limit: size: 8196, limit 8192`},
		{"too expensive", func(r *policy.Rule) { r.When = `user.groups.all(g, user.groups.exists(h, g == h))` }, nil,
			`policy: rule "r": when has estimated worst-case cost 8391683, above the limit 100000`},
		{"above a lower cost limit", func(r *policy.Rule) {}, []policy.Option{policy.WithCostLimit(100)},
			`policy: rule "first": when has estimated worst-case cost 514, above the limit 100`},
		{"zero cost limit", func(r *policy.Rule) {}, []policy.Option{policy.WithCostLimit(0)},
			`policy: cost limit must be positive`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			first := goodRule()
			first.Name = "first"
			r := goodRule()
			tt.modify(&r)
			p, err := policy.Compile([]policy.Rule{first, r}, tt.opts...)
			if err == nil {
				t.Fatalf("Compile succeeded, want error %q", tt.wantErr)
			}
			if p != nil {
				t.Errorf("Compile returned a policy with an error")
			}
			if got := err.Error(); got != tt.wantErr {
				t.Errorf("error =\n%s\nwant\n%s", got, tt.wantErr)
			}
		})
	}
}

func TestCompileNoRules(t *testing.T) {
	for _, rules := range [][]policy.Rule{nil, {}} {
		_, err := policy.Compile(rules)
		if err == nil || err.Error() != "policy: no rules" {
			t.Errorf("Compile(%v) error = %v, want policy: no rules", rules, err)
		}
	}
}

func TestCompileAccepts(t *testing.T) {
	// Conditions an operator may write: each must compile under the default
	// cost limit.
	for _, when := range []string{
		`true`,
		`"marketing" in user.groups && agent.id == "spiffe://example.org/agent/gdpr-compliance"`,
		`user.email.endsWith("@example.com")`,
		`has(user.email) && user.email.lowerAscii().endsWith("@example.com")`,
		`size(request.intent) >= 10 && size(request.intent) <= 500`,
		`user.groups.exists(g, g.startsWith("team-"))`,
		`sets.intersects(user.groups, ["finance", "legal"])`,
		`request.scopes.all(s, s in agent.ceiling)`,
		`request.intent.matches("^[a-zA-Z0-9 ,.]+$")`,
		`request.ttl <= duration("30m") && caller == "spiffe://example.org/app/chat"`,
		`user.iss == "https://idp.example.com" && user.sub != "mallory"`,
		`agent.name.startsWith("gdpr-") && caller.startsWith("spiffe://example.org/app/")`,
		`user.email.split("@")[1] == "example.com"`,
	} {
		r := goodRule()
		r.When = when
		if _, err := policy.Compile([]policy.Rule{r}); err != nil {
			t.Errorf("Compile(%q): %v", when, err)
		}
	}
}

func TestCompileCallerLocal(t *testing.T) {
	r := goodRule()
	r.Callers = []string{policy.CallerLocal, chatApp}
	mustCompile(t, []policy.Rule{r})
}
