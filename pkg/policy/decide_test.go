package policy_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/agentid/agentid/pkg/delegation"
	"github.com/agentid/agentid/pkg/policy"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

const (
	gdprAgent   = "spiffe://example.org/agent/gdpr"
	readerAgent = "spiffe://example.org/agent/reader"
	chatApp     = "spiffe://example.org/app/chat"
	otherApp    = "spiffe://example.org/app/other"
)

// testRules is the policy most Decide tests run against. Order matters: it
// is first match.
var testRules = []policy.Rule{
	{
		Name:     "marketing-gdpr",
		When:     `"marketing" in user.groups && agent.id == "spiffe://example.org/agent/gdpr"`,
		Scopes:   []string{"campaigns:read", "compliance:check"},
		MaxTTL:   time.Hour,
		MaxDepth: 2,
		Callers:  []string{chatApp},
	},
	{
		Name:     "staff-docs",
		When:     `user.email.endsWith("@example.com") && size(request.intent) >= 10`,
		Scopes:   []string{"docs:read", "docs:write"},
		MaxTTL:   15 * time.Minute,
		MaxDepth: 1,
		Callers:  []string{chatApp, policy.CallerLocal},
	},
	{
		Name:     "legal-finance",
		When:     `sets.intersects(user.groups, ["finance", "legal"]) && caller.startsWith("spiffe://example.org/app/")`,
		Scopes:   []string{"contracts:read"},
		MaxTTL:   30 * time.Minute,
		MaxDepth: 3,
		Callers:  []string{chatApp, otherApp},
	},
	{
		Name:     "reader-self",
		When:     `agent.name == "reader" && request.ttl <= duration("10m")`,
		Scopes:   []string{"docs:read", "campaigns:read"},
		MaxTTL:   5 * time.Minute,
		MaxDepth: 1,
	},
}

// baseInput asks rule "marketing-gdpr" for two scopes it holds and one it
// does not, from the chat front end.
func baseInput(tb testing.TB) policy.Input {
	tb.Helper()
	return policy.Input{
		User: policy.User{
			Issuer:  "https://idp.example.com",
			Subject: "alice",
			Email:   "alice@partner.example.net",
			Groups:  []string{"marketing"},
		},
		Agent: policy.Agent{
			ID:      mustID(tb, gdprAgent),
			Name:    "gdpr",
			Ceiling: delegation.MustParseScopes("campaigns:read", "compliance:check", "docs:read"),
		},
		Caller: mustID(tb, chatApp),
		Scopes: delegation.MustParseScopes("campaigns:read", "compliance:check", "docs:write"),
		Intent: "check the spring campaign",
	}
}

func TestDecide(t *testing.T) {
	p := mustCompile(t, testRules)
	scopes := delegation.MustParseScopes
	tests := []struct {
		name   string
		modify func(in *policy.Input)
		want   policy.Decision
		// wantDenial is the exact error text, wantRule the Denial's Rule.
		wantDenial string
		wantRule   string
	}{
		{
			name:   "grant is ask ∩ rule ∩ ceiling; ttl 0 gets the rule's max",
			modify: func(in *policy.Input) {},
			want:   policy.Decision{Rule: "marketing-gdpr", Scopes: scopes("campaigns:read", "compliance:check"), TTL: time.Hour, MaxDepth: 2},
		},
		{
			name:   "agent ceiling narrows the grant",
			modify: func(in *policy.Input) { in.Agent.Ceiling = scopes("campaigns:read") },
			want:   policy.Decision{Rule: "marketing-gdpr", Scopes: scopes("campaigns:read"), TTL: time.Hour, MaxDepth: 2},
		},
		{
			name:   "ttl above the rule's max is capped, not denied",
			modify: func(in *policy.Input) { in.TTL = 3 * time.Hour },
			want:   policy.Decision{Rule: "marketing-gdpr", Scopes: scopes("campaigns:read", "compliance:check"), TTL: time.Hour, MaxDepth: 2},
		},
		{
			name:   "ttl below the rule's max is kept",
			modify: func(in *policy.Input) { in.TTL = 20 * time.Minute },
			want:   policy.Decision{Rule: "marketing-gdpr", Scopes: scopes("campaigns:read", "compliance:check"), TTL: 20 * time.Minute, MaxDepth: 2},
		},
		{
			name: "first match wins even when a later rule would grant more",
			modify: func(in *policy.Input) {
				in.User.Email = "alice@example.com"
				in.Scopes = scopes("campaigns:read", "docs:read")
			},
			want: policy.Decision{Rule: "marketing-gdpr", Scopes: scopes("campaigns:read"), TTL: time.Hour, MaxDepth: 2},
		},
		{
			name: "a matching rule with an empty grant falls through to the next",
			modify: func(in *policy.Input) {
				in.User.Email = "alice@example.com"
				in.Agent.Ceiling = scopes("campaigns:read", "docs:write")
				in.Scopes = scopes("docs:write")
			},
			want: policy.Decision{Rule: "staff-docs", Scopes: scopes("docs:write"), TTL: 15 * time.Minute, MaxDepth: 1},
		},
		{
			name:       "nothing grantable is a denial, not an empty delegation",
			modify:     func(in *policy.Input) { in.Scopes = scopes("docs:write") },
			wantDenial: `policy: denied: rule "marketing-gdpr": no requested scope can be granted`,
			wantRule:   "marketing-gdpr",
		},
		{
			name:       "scope allowed by the rule but outside the ceiling is not granted",
			modify:     func(in *policy.Input) { in.Agent.Ceiling = scopes("docs:read"); in.Scopes = scopes("compliance:check") },
			wantDenial: `policy: denied: rule "marketing-gdpr": no requested scope can be granted`,
			wantRule:   "marketing-gdpr",
		},
		{
			name:       "caller not in the rule's callers",
			modify:     func(in *policy.Input) { in.Caller = mustID(t, otherApp) },
			wantDenial: `policy: denied: rule "marketing-gdpr": caller not allowed`,
			wantRule:   "marketing-gdpr",
		},
		{
			name:   "the agent itself may always ask for itself",
			modify: func(in *policy.Input) { in.Caller = mustID(t, gdprAgent) },
			want:   policy.Decision{Rule: "marketing-gdpr", Scopes: scopes("campaigns:read", "compliance:check"), TTL: time.Hour, MaxDepth: 2},
		},
		{
			name:       "another agent is not the agent itself",
			modify:     func(in *policy.Input) { in.Caller = mustID(t, readerAgent) },
			wantDenial: `policy: denied: rule "marketing-gdpr": caller not allowed`,
			wantRule:   "marketing-gdpr",
		},
		{
			name:       "same path in another trust domain is another caller",
			modify:     func(in *policy.Input) { in.Caller = mustID(t, "spiffe://evil.example/app/chat") },
			wantDenial: `policy: denied: rule "marketing-gdpr": caller not allowed`,
			wantRule:   "marketing-gdpr",
		},
		{
			name:       "local socket is refused by a rule that does not list it",
			modify:     func(in *policy.Input) { in.Caller = spiffeid.ID{} },
			wantDenial: `policy: denied: rule "marketing-gdpr": caller not allowed`,
			wantRule:   "marketing-gdpr",
		},
		{
			name: "local socket is admitted by a rule that lists it",
			modify: func(in *policy.Input) {
				in.Caller = spiffeid.ID{}
				in.User.Email = "alice@example.com"
				in.Scopes = scopes("docs:read")
			},
			want: policy.Decision{Rule: "staff-docs", Scopes: scopes("docs:read"), TTL: 15 * time.Minute, MaxDepth: 1},
		},
		{
			name: "email suffix test is not fooled by a longer domain",
			modify: func(in *policy.Input) {
				in.User.Groups = nil
				in.User.Email = "mallory@example.com.evil.example"
				in.Scopes = scopes("docs:read")
			},
			wantDenial: "policy: denied: no rule matches",
		},
		{
			name: "intent shorter than the rule asks for",
			modify: func(in *policy.Input) {
				in.User.Groups = nil
				in.User.Email = "alice@example.com"
				in.Intent = "gdpr"
				in.Scopes = scopes("docs:read")
			},
			wantDenial: "policy: denied: no rule matches",
		},
		{
			name: "group membership through sets.intersects",
			modify: func(in *policy.Input) {
				in.User.Groups = []string{"engineering", "legal"}
				in.Agent.Ceiling = scopes("contracts:read")
				in.Caller = mustID(t, otherApp)
				in.Scopes = scopes("contracts:read")
			},
			want: policy.Decision{Rule: "legal-finance", Scopes: scopes("contracts:read"), TTL: 30 * time.Minute, MaxDepth: 3},
		},
		{
			name: "group names match exactly, not by prefix",
			modify: func(in *policy.Input) {
				in.User.Groups = []string{"legal-interns", "marketing-interns"}
				in.Agent.Ceiling = scopes("contracts:read")
				in.Scopes = scopes("contracts:read")
			},
			wantDenial: "policy: denied: no rule matches",
		},
		{
			name: "condition on caller sees the empty string for the local socket",
			modify: func(in *policy.Input) {
				in.User.Groups = []string{"legal"}
				in.Agent.Ceiling = scopes("contracts:read")
				in.Caller = spiffeid.ID{}
				in.Scopes = scopes("contracts:read")
			},
			wantDenial: "policy: denied: no rule matches",
		},
		{
			name: "every rule passed over is named, in order",
			modify: func(in *policy.Input) {
				in.User.Groups = []string{"marketing", "legal"}
				in.Caller = mustID(t, otherApp)
				in.Scopes = scopes("docs:write")
			},
			wantDenial: `policy: denied: rule "marketing-gdpr": caller not allowed; rule "legal-finance": no requested scope can be granted`,
			wantRule:   "marketing-gdpr",
		},
		{
			name: "condition on the requested ttl",
			modify: func(in *policy.Input) {
				in.User.Groups = nil
				in.Agent = policy.Agent{ID: mustID(t, readerAgent), Name: "reader", Ceiling: scopes("docs:read")}
				in.Caller = mustID(t, readerAgent)
				in.Scopes = scopes("docs:read")
				in.TTL = 10 * time.Minute
			},
			want: policy.Decision{Rule: "reader-self", Scopes: scopes("docs:read"), TTL: 5 * time.Minute, MaxDepth: 1},
		},
		{
			name: "requested ttl is what the condition sees, before capping",
			modify: func(in *policy.Input) {
				in.User.Groups = nil
				in.Agent = policy.Agent{ID: mustID(t, readerAgent), Name: "reader", Ceiling: scopes("docs:read")}
				in.Caller = mustID(t, readerAgent)
				in.Scopes = scopes("docs:read")
				in.TTL = 11 * time.Minute
			},
			wantDenial: "policy: denied: no rule matches",
		},
		{
			name: "rule with no callers refuses everyone but the agent",
			modify: func(in *policy.Input) {
				in.User.Groups = nil
				in.Agent = policy.Agent{ID: mustID(t, readerAgent), Name: "reader", Ceiling: scopes("docs:read")}
				in.Scopes = scopes("docs:read")
			},
			wantDenial: `policy: denied: rule "reader-self": caller not allowed`,
			wantRule:   "reader-self",
		},
		{
			name:       "asking for no scope",
			modify:     func(in *policy.Input) { in.Scopes = delegation.ScopeSet{} },
			wantDenial: "policy: denied: no scope requested",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := baseInput(t)
			tt.modify(&in)
			got, err := p.Decide(context.Background(), in)
			if tt.wantDenial != "" {
				assertDenial(t, err, tt.wantDenial, tt.wantRule)
				if got.Rule != "" || !got.Scopes.IsEmpty() || got.TTL != 0 || got.MaxDepth != 0 {
					t.Errorf("Decide returned %+v with a denial, want the zero Decision", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("Decide: %v", err)
			}
			assertDecision(t, got, tt.want)
		})
	}
}

func assertDecision(tb testing.TB, got, want policy.Decision) {
	tb.Helper()
	if got.Rule != want.Rule || !got.Scopes.Equal(want.Scopes) || got.TTL != want.TTL || got.MaxDepth != want.MaxDepth {
		tb.Errorf("Decision = {%s [%s] %s %d}, want {%s [%s] %s %d}",
			got.Rule, got.Scopes, got.TTL, got.MaxDepth, want.Rule, want.Scopes, want.TTL, want.MaxDepth)
	}
}

func assertDenial(tb testing.TB, err error, wantText, wantRule string) {
	tb.Helper()
	if err == nil {
		tb.Fatalf("Decide: no error, want denial %q", wantText)
	}
	if got := err.Error(); got != wantText {
		tb.Errorf("error = %q\nwant    %q", got, wantText)
	}
	if !errors.Is(err, policy.ErrDenied) {
		tb.Errorf("errors.Is(%v, ErrDenied) = false", err)
	}
	var d *policy.Denial
	if !errors.As(err, &d) {
		tb.Fatalf("error %T is not a *Denial", err)
	}
	if d.Rule != wantRule {
		tb.Errorf("Denial.Rule = %q, want %q", d.Rule, wantRule)
	}
}

func TestDecideEvaluationErrorFailsClosed(t *testing.T) {
	p := mustCompile(t, []policy.Rule{
		{Name: "third-group", When: `user.groups[2] == "admins"`, Scopes: []string{"docs:read"}, MaxTTL: time.Hour, MaxDepth: 1, Callers: []string{chatApp}},
		{Name: "everyone", When: `true`, Scopes: []string{"docs:read"}, MaxTTL: time.Hour, MaxDepth: 1, Callers: []string{chatApp}},
	})
	in := baseInput(t)
	in.Scopes = delegation.MustParseScopes("docs:read")

	// One group: the first rule cannot be evaluated. The second would grant,
	// but it must not: the first rule might have been meant to shadow it.
	_, err := p.Decide(context.Background(), in)
	assertDenial(t, err, `policy: denied: rule "third-group": evaluation failed, later rules not evaluated: index out of bounds: 2`, "third-group")

	// Three groups: the first rule evaluates to false and the second grants.
	in.User.Groups = []string{"a", "b", "c"}
	got, err := p.Decide(context.Background(), in)
	if err != nil {
		t.Fatalf("Decide: %v", err)
	}
	assertDecision(t, got, policy.Decision{Rule: "everyone", Scopes: in.Scopes, TTL: time.Hour, MaxDepth: 1})
}

func TestDecideInvalidInput(t *testing.T) {
	p := mustCompile(t, testRules)
	tests := []struct {
		name    string
		modify  func(in *policy.Input)
		wantErr string
	}{
		{"no issuer", func(in *policy.Input) { in.User.Issuer = "" }, "policy: invalid input: user issuer is empty"},
		{"no subject", func(in *policy.Input) { in.User.Subject = "" }, "policy: invalid input: user subject is empty"},
		{"long issuer", func(in *policy.Input) { in.User.Issuer = "https://" + strings.Repeat("a", 505) }, "policy: invalid input: user issuer is 513 bytes, at most 512"},
		{"long subject", func(in *policy.Input) { in.User.Subject = strings.Repeat("s", 256) }, "policy: invalid input: user subject is 256 bytes, at most 255"},
		{"long email", func(in *policy.Input) { in.User.Email = strings.Repeat("e", 321) }, "policy: invalid input: user email is 321 bytes, at most 320"},
		{"too many groups", func(in *policy.Input) { in.User.Groups = make([]string, 513) }, "policy: invalid input: user has 513 groups, at most 512"},
		{"long group", func(in *policy.Input) { in.User.Groups = []string{"ok", strings.Repeat("g", 257)} }, "policy: invalid input: user group 1 is 257 bytes, at most 256"},
		{"no agent", func(in *policy.Input) { in.Agent.ID = spiffeid.ID{} }, "policy: invalid input: agent id is empty"},
		{"long agent id", func(in *policy.Input) { in.Agent.ID = mustID(t, "spiffe://example.org/"+strings.Repeat("a", 2028)) }, "policy: invalid input: agent id is 2049 bytes, at most 2048"},
		{"long agent name", func(in *policy.Input) { in.Agent.Name = strings.Repeat("n", 257) }, "policy: invalid input: agent name is 257 bytes, at most 256"},
		{"long caller id", func(in *policy.Input) { in.Caller = mustID(t, "spiffe://example.org/"+strings.Repeat("c", 2028)) }, "policy: invalid input: caller id is 2049 bytes, at most 2048"},
		{"negative ttl", func(in *policy.Input) { in.TTL = -time.Second }, "policy: invalid input: ttl -1s is negative"},
		{"long intent", func(in *policy.Input) { in.Intent = strings.Repeat("i", 2049) }, "policy: invalid input: intent is 2049 bytes, at most 2048"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := baseInput(t)
			tt.modify(&in)
			_, err := p.Decide(context.Background(), in)
			if err == nil || err.Error() != tt.wantErr {
				t.Fatalf("Decide error = %v, want %q", err, tt.wantErr)
			}
			if !errors.Is(err, policy.ErrInvalidInput) || errors.Is(err, policy.ErrDenied) {
				t.Errorf("error %v: want ErrInvalidInput and not ErrDenied", err)
			}
		})
	}
}

func TestDecideAtInputBounds(t *testing.T) {
	// The largest input Decide accepts is evaluated, not rejected.
	p := mustCompile(t, testRules)
	in := baseInput(t)
	in.User.Groups = make([]string, policy.MaxGroups)
	for i := range in.User.Groups {
		in.User.Groups[i] = strings.Repeat("g", policy.MaxGroupLength-1) + string(rune('a'+i%26))
	}
	in.User.Groups[policy.MaxGroups-1] = "marketing"
	in.Intent = strings.Repeat("i", delegation.MaxIntentLength)
	got, err := p.Decide(context.Background(), in)
	if err != nil {
		t.Fatalf("Decide: %v", err)
	}
	assertDecision(t, got, policy.Decision{Rule: "marketing-gdpr", Scopes: delegation.MustParseScopes("campaigns:read", "compliance:check"), TTL: time.Hour, MaxDepth: 2})
}

func TestDecideContextDone(t *testing.T) {
	p := mustCompile(t, testRules)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := p.Decide(ctx, baseInput(t))
	if err == nil || err.Error() != "policy: context canceled" || !errors.Is(err, context.Canceled) || errors.Is(err, policy.ErrDenied) {
		t.Fatalf("Decide error = %v, want policy: context canceled", err)
	}
}

func TestDecideConcurrent(t *testing.T) {
	// A Policy is shared by every request handler; run with -race.
	p := mustCompile(t, testRules)
	done := make(chan error)
	for range 4 {
		go func() {
			for range 50 {
				if _, err := p.Decide(context.Background(), baseInput(t)); err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
	}
	for range 4 {
		if err := <-done; err != nil {
			t.Fatalf("Decide: %v", err)
		}
	}
}

func TestAllowedSubAgent(t *testing.T) {
	allowed := []spiffeid.ID{mustID(t, gdprAgent), mustID(t, readerAgent)}
	tests := []struct {
		agent spiffeid.ID
		want  bool
	}{
		{mustID(t, gdprAgent), true},
		{mustID(t, readerAgent), true},
		{mustID(t, "spiffe://example.org/agent/gdpr/child"), false},
		{mustID(t, "spiffe://other.example/agent/gdpr"), false},
		{spiffeid.ID{}, false},
	}
	for _, tt := range tests {
		if got := policy.AllowedSubAgent(allowed, tt.agent); got != tt.want {
			t.Errorf("AllowedSubAgent(%q) = %v, want %v", tt.agent, got, tt.want)
		}
	}
	if policy.AllowedSubAgent(nil, mustID(t, gdprAgent)) {
		t.Error("AllowedSubAgent(nil, ...) = true, want false")
	}
}

// TestConditions pins down what each variable and field holds, as seen from
// a condition, for baseInput.
func TestConditions(t *testing.T) {
	tests := []struct {
		when   string
		modify func(in *policy.Input)
		want   bool
	}{
		{`user.iss == "https://idp.example.com" && user.sub == "alice"`, nil, true},
		{`has(user.email) && user.email == "alice@partner.example.net"`, nil, true},
		{`has(user.email)`, func(in *policy.Input) { in.User.Email = "" }, false},
		{`user.email.split("@")[1] == "partner.example.net"`, nil, true},
		{`size(user.groups) == 1 && user.groups[0] == "marketing"`, nil, true},
		{`user.groups.exists(g, g.startsWith("mark"))`, nil, true},
		{`sets.contains(user.groups, ["marketing"])`, nil, true},
		{`has(user.groups)`, func(in *policy.Input) { in.User.Groups = nil }, false},
		{`user.groups == []`, func(in *policy.Input) { in.User.Groups = nil }, true},
		{`agent.id == "spiffe://example.org/agent/gdpr" && agent.name == "gdpr"`, nil, true},
		{`"docs:read" in agent.ceiling && size(agent.ceiling) == 3`, nil, true},
		{`request.scopes.all(s, s in agent.ceiling)`, nil, false},
		{`request.scopes == ["campaigns:read", "compliance:check", "docs:write"]`, nil, true},
		{`caller == "spiffe://example.org/app/chat"`, nil, true},
		{`caller == ""`, func(in *policy.Input) { in.Caller = spiffeid.ID{} }, true},
		{`request.ttl == duration("0s") && !has(request.ttl)`, nil, true},
		{`request.ttl == duration("90m")`, func(in *policy.Input) { in.TTL = 90 * time.Minute }, true},
		{`request.intent.lowerAscii().contains("spring")`, nil, true},
		{`request.intent.matches("^check ")`, nil, true},
		{`dyn(user).email == "alice@partner.example.net"`, nil, true},
		{`has(dyn(user).email)`, func(in *policy.Input) { in.User.Email = "" }, false},
		{`has(dyn(request).intent)`, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.when, func(t *testing.T) {
			r := goodRule()
			r.When = tt.when
			r.Callers = append(r.Callers, policy.CallerLocal)
			p := mustCompile(t, []policy.Rule{r})
			in := baseInput(t)
			if tt.modify != nil {
				tt.modify(&in)
			}
			_, err := p.Decide(context.Background(), in)
			switch {
			case tt.want && err != nil:
				t.Fatalf("Decide: %v, want a grant", err)
			case !tt.want:
				assertDenial(t, err, "policy: denied: no rule matches", "")
			}
		})
	}
}

func TestConditionCannotForgeObjects(t *testing.T) {
	r := goodRule()
	r.When = `agentid.User{iss: "https://idp.example.com"}.iss == user.iss`
	p := mustCompile(t, []policy.Rule{r})
	_, err := p.Decide(context.Background(), baseInput(t))
	assertDenial(t, err, `policy: denied: rule "r": evaluation failed, later rules not evaluated: agentid.User cannot be constructed in a rule`, "r")
}
