package policy

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/agentid/agentid/pkg/delegation"
	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// maxInput is the most expensive input Decide accepts: every list and
// string at its bound.
func maxInput(tb testing.TB) Input {
	tb.Helper()
	long := func(n int, c string) string { return strings.Repeat(c, n) }
	scopes := make([]string, delegation.MaxScopes)
	for i := range scopes {
		scopes[i] = long(delegation.MaxScopeLength-2, "s") + string(rune('a'+i/26)) + string(rune('a'+i%26))
	}
	groups := make([]string, MaxGroups)
	for i := range groups {
		groups[i] = long(MaxGroupLength-3, "g") + string(rune('a'+i/676)) + string(rune('a'+i/26%26)) + string(rune('a'+i%26))
	}
	set := delegation.MustParseScopes(scopes...)
	id := func(prefix string) spiffeid.ID {
		v, err := spiffeid.FromString(prefix + long(MaxSPIFFEIDLength-len(prefix), "p"))
		if err != nil {
			tb.Fatal(err)
		}
		return v
	}
	return Input{
		User: User{
			Issuer:  "https://" + long(delegation.MaxIssuerLength-8, "i"),
			Subject: long(delegation.MaxSubjectLength, "u"),
			Email:   long(delegation.MaxEmailLength, "e"),
			Groups:  groups,
		},
		Agent:  Agent{ID: id("spiffe://example.org/agent/"), Name: long(MaxAgentNameLength, "n"), Ceiling: set},
		Caller: id("spiffe://example.org/app/"),
		Scopes: set,
		TTL:    time.Hour,
		Intent: long(delegation.MaxIntentLength, "t"),
	}
}

// costlyConditions are conditions with a large worst case, each false on
// maxInput so that it runs to the end. The last two are above
// DefaultCostLimit.
var costlyConditions = []string{
	`"marketing" in user.groups`,
	`user.groups.exists(g, g.startsWith("team-"))`,
	`user.groups.exists(g, g.contains("team-"))`,
	`sets.intersects(user.groups, ["finance", "legal"])`,
	`request.scopes.all(s, s in agent.ceiling) && false`,
	`request.intent.matches("^[a-z]+x$")`,
	`request.intent.contains(user.email)`,
	`(user.email + user.sub + user.iss).size() > 100000`,
	`agent.id.contains(caller)`,
	`request.intent.split(" ").size() > 1000`,
	`user.groups.exists(g, g.lowerAscii() == "x")`,
	`user.groups.exists(g, request.scopes.exists(s, g == s))`,
}

// TestCostEstimateBoundsActualCost checks the input bounds table: for each
// condition, the cost of evaluating it on the largest input Decide accepts is
// at most the estimate Compile checked against the limit.
func TestCostEstimateBoundsActualCost(t *testing.T) {
	act := newActivation(maxInput(t))
	for _, when := range costlyConditions {
		p, err := Compile([]Rule{{Name: "r", When: when, Scopes: []string{"a"}, MaxTTL: time.Hour, MaxDepth: 1}}, WithCostLimit(1_000_000))
		if err != nil {
			t.Errorf("Compile(%q): %v", when, err)
			continue
		}
		r := p.rules[0]
		out, det, err := r.program.Eval(act)
		if err != nil {
			t.Errorf("%s: Eval: %v", when, err)
			continue
		}
		if out.Value() != false {
			t.Errorf("%s = %v on the max input, want false so it runs in full", when, out)
		}
		actual := *det.ActualCost()
		t.Logf("%-60s estimate %6d actual %6d", when, r.maxCost, actual)
		if actual > r.maxCost {
			t.Errorf("%s: actual cost %d above the estimate %d", when, actual, r.maxCost)
		}
	}
}

// TestRuntimeCostLimit shows the second fence: a condition that gets past
// the estimate (here by building the program without the compile check) is
// stopped at the limit during evaluation, and the request is denied.
func TestRuntimeCostLimit(t *testing.T) {
	env, err := newEnv()
	if err != nil {
		t.Fatal(err)
	}
	ast, iss := env.Compile(`user.groups.exists(g, g == "admins")`)
	if iss.Err() != nil {
		t.Fatal(iss.Err())
	}
	prog, err := env.Program(ast, cel.CostLimit(10))
	if err != nil {
		t.Fatal(err)
	}
	p := &Policy{rules: []compiledRule{{
		name: "runaway", program: prog, scopes: delegation.MustParseScopes("a"),
		maxTTL: time.Hour, maxDepth: 1, allowLocal: true,
	}}}
	in := maxInput(t)
	in.Caller = spiffeid.ID{}
	in.Scopes = delegation.MustParseScopes("a")
	_, err = p.Decide(context.Background(), in)
	want := `policy: denied: rule "runaway": evaluation failed, later rules not evaluated: operation cancelled: actual cost limit exceeded`
	if err == nil || err.Error() != want {
		t.Fatalf("Decide error = %v\nwant %s", err, want)
	}
}

// TestInputSizesCoverEveryField guards the estimator: a string or list field
// added to an object without a bound in inputSizes would be estimated as
// unbounded, and every condition touching it would fail to compile.
func TestInputSizesCoverEveryField(t *testing.T) {
	vars := map[string]*objectType{"user": userType, "agent": agentType, "request": requestType}
	for v, ot := range vars {
		for _, name := range ot.names {
			path := v + "." + name
			switch ot.fields[name].Type.Kind() {
			case types.StringKind:
				if _, ok := inputSizes[path]; !ok {
					t.Errorf("inputSizes has no bound for %s", path)
				}
			case types.ListKind:
				if _, ok := inputSizes[path]; !ok {
					t.Errorf("inputSizes has no bound for %s", path)
				}
				if _, ok := inputSizes[path+".@items"]; !ok {
					t.Errorf("inputSizes has no bound for %s.@items", path)
				}
			}
		}
	}
	if len(inputSizes) != 13 {
		t.Errorf("inputSizes has %d entries, want 13: update this test with the fields", len(inputSizes))
	}
}

// BenchmarkCostlyConditions measures each of costlyConditions that fits
// DefaultCostLimit on the largest input, to relate CEL cost units to time.
func BenchmarkCostlyConditions(b *testing.B) {
	act := newActivation(maxInput(b))
	for _, when := range costlyConditions {
		p, err := Compile([]Rule{{Name: "r", When: when, Scopes: []string{"a"}, MaxTTL: time.Hour, MaxDepth: 1}})
		if err != nil {
			continue // above the default limit
		}
		b.Run(when, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := p.rules[0].program.Eval(act); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(p.rules[0].maxCost), "est-cost")
		})
	}
}
