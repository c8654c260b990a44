package policy_test

import (
	"testing"

	"github.com/agentid/agentid/pkg/policy"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

func mustID(tb testing.TB, s string) spiffeid.ID {
	tb.Helper()
	id, err := spiffeid.FromString(s)
	if err != nil {
		tb.Fatalf("spiffeid.FromString(%q): %v", s, err)
	}
	return id
}

func mustCompile(tb testing.TB, rules []policy.Rule, opts ...policy.Option) *policy.Policy {
	tb.Helper()
	p, err := policy.Compile(rules, opts...)
	if err != nil {
		tb.Fatalf("Compile: %v", err)
	}
	return p
}
