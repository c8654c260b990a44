package policy_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/agentid/agentid/pkg/delegation"
	"github.com/agentid/agentid/pkg/policy"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

func ExampleCompile() {
	_, err := policy.Compile([]policy.Rule{{
		Name:     "marketing-may-ask-gdpr-agent",
		When:     `"marketing" in user.gruops`,
		Scopes:   []string{"campaigns:read"},
		MaxTTL:   time.Hour,
		MaxDepth: 2,
	}})
	fmt.Println(err)
	// Output:
	// policy: rule "marketing-may-ask-gdpr-agent": ERROR: when:1:20: undefined field 'gruops'
	//  | "marketing" in user.gruops
	//  | ...................^
}

func ExamplePolicy_Decide() {
	p, err := policy.Compile([]policy.Rule{{
		Name:     "marketing-may-ask-gdpr-agent",
		When:     `"marketing" in user.groups && agent.id == "spiffe://example.org/agent/gdpr-compliance"`,
		Scopes:   []string{"campaigns:read", "compliance:check"},
		MaxTTL:   time.Hour,
		MaxDepth: 2,
		Callers:  []string{"spiffe://example.org/app/chat-frontend"},
	}})
	if err != nil {
		panic(err)
	}
	in := policy.Input{
		User: policy.User{Issuer: "https://idp.example.com", Subject: "alice", Groups: []string{"marketing"}},
		Agent: policy.Agent{
			ID:      spiffeid.RequireFromString("spiffe://example.org/agent/gdpr-compliance"),
			Name:    "gdpr-compliance",
			Ceiling: delegation.MustParseScopes("campaigns:read", "compliance:check", "reports:write"),
		},
		Caller: spiffeid.RequireFromString("spiffe://example.org/app/chat-frontend"),
		Scopes: delegation.MustParseScopes("campaigns:read", "reports:write"),
		TTL:    8 * time.Hour,
		Intent: "check the spring campaign for GDPR issues",
	}
	d, err := p.Decide(context.Background(), in)
	if err != nil {
		panic(err)
	}
	fmt.Printf("rule=%s scopes=%q ttl=%s max_depth=%d\n", d.Rule, d.Scopes, d.TTL, d.MaxDepth)

	in.Caller = spiffeid.RequireFromString("spiffe://example.org/app/other")
	_, err = p.Decide(context.Background(), in)
	fmt.Println(err, errors.Is(err, policy.ErrDenied))
	// Output:
	// rule=marketing-may-ask-gdpr-agent scopes="campaigns:read" ttl=1h0m0s max_depth=2
	// policy: denied: rule "marketing-may-ask-gdpr-agent": caller not allowed true
}
