package policy_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/agentid/agentid/pkg/delegation"
	"github.com/agentid/agentid/pkg/policy"
)

// benchRules is a 10-rule policy of the kind the design describes. The input
// of BenchmarkDecide matches only the last rule, so every rule is evaluated:
// the worst case for first match.
func benchRules() []policy.Rule {
	whens := []string{
		`"marketing" in user.groups && agent.id == "spiffe://example.org/agent/gdpr-compliance"`,
		`"finance" in user.groups && agent.name.startsWith("ledger-")`,
		`sets.intersects(user.groups, ["legal", "compliance"]) && agent.id == "spiffe://example.org/agent/contracts"`,
		`user.email.endsWith("@contractor.example.com") && agent.name == "helpdesk"`,
		`user.iss == "https://partner-idp.example.net" && "partners" in user.groups`,
		`agent.name == "reader" && request.ttl <= duration("10m")`,
		`user.groups.exists(g, g.startsWith("team-sre")) && agent.id.startsWith("spiffe://example.org/agent/ops-")`,
		`size(request.intent) >= 20 && agent.name == "research"`,
		`caller == "spiffe://example.org/app/batch" && agent.name == "batch-summariser"`,
		`user.email.endsWith("@example.com") && size(request.intent) >= 10`,
	}
	rules := make([]policy.Rule, len(whens))
	for i, w := range whens {
		rules[i] = policy.Rule{
			Name:     "rule-" + string(rune('a'+i)),
			When:     w,
			Scopes:   []string{"docs:read", "calendar:read", "campaigns:read"},
			MaxTTL:   time.Hour,
			MaxDepth: 2,
			Callers:  []string{chatApp},
		}
	}
	return rules
}

func benchInput(tb testing.TB) policy.Input {
	tb.Helper()
	return policy.Input{
		User: policy.User{
			Issuer:  "https://idp.example.com",
			Subject: "alice",
			Email:   "alice@example.com",
			Groups:  []string{"engineering", "team-web", "all-staff", "eu", "employees"},
		},
		Agent: policy.Agent{
			ID:      mustID(tb, "spiffe://example.org/agent/assistant"),
			Name:    "assistant",
			Ceiling: delegation.MustParseScopes("docs:read", "docs:write", "calendar:read"),
		},
		Caller: mustID(tb, chatApp),
		Scopes: delegation.MustParseScopes("docs:read", "calendar:read"),
		TTL:    30 * time.Minute,
		Intent: "summarise the Q3 planning docs",
	}
}

func benchDecide(b *testing.B, in policy.Input, wantErr bool) {
	p := mustCompile(b, benchRules())
	ctx := context.Background()
	if _, err := p.Decide(ctx, in); (err != nil) != wantErr {
		b.Fatalf("Decide: %v, want error %v", err, wantErr)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			_, _ = p.Decide(ctx, in)
		}
	})
}

// BenchmarkDecide: 10 rules, the last one grants. Parallel over GOMAXPROCS,
// as the server runs it.
func BenchmarkDecide(b *testing.B) {
	benchDecide(b, benchInput(b), false)
}

// BenchmarkDecideNoMatch: 10 rules, none matches; every condition runs.
func BenchmarkDecideNoMatch(b *testing.B) {
	in := benchInput(b)
	in.User.Email = "alice@partner.example.net"
	benchDecide(b, in, true)
}

// BenchmarkDecideLargeUser: as BenchmarkDecide with a user at the input
// bounds (512 groups of 256 bytes, a 2 KiB intent): the slowest input a
// token within bounds can cause for this policy.
func BenchmarkDecideLargeUser(b *testing.B) {
	in := benchInput(b)
	in.User.Groups = make([]string, policy.MaxGroups)
	for i := range in.User.Groups {
		in.User.Groups[i] = strings.Repeat("g", policy.MaxGroupLength-3) + string(rune('a'+i/676)) + string(rune('a'+i/26%26)) + string(rune('a'+i%26))
	}
	in.Intent = strings.Repeat("i", delegation.MaxIntentLength)
	benchDecide(b, in, false)
}
