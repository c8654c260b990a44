// Package policy decides whether a user may delegate to an agent, and with
// what: the scopes, the lifetime and how deep the chain of sub-agents may
// grow. It denies by default. Rules are written by the operator in the
// server's configuration, with conditions in CEL, the expression language
// Kubernetes and Envoy operators already write.
//
// # Rules
//
// A Rule is a name, a condition, and the most it grants:
//
//	rules := []policy.Rule{{
//		Name:     "marketing-may-ask-gdpr-agent",
//		When:     `"marketing" in user.groups && agent.id == "spiffe://example.org/agent/gdpr-compliance"`,
//		Scopes:   []string{"campaigns:read", "compliance:check"},
//		MaxTTL:   time.Hour,
//		MaxDepth: 2,
//		Callers:  []string{"spiffe://example.org/app/chat-frontend"},
//	}}
//	p, err := policy.Compile(rules)
//
// Compile checks everything once, at start-up: names, scopes, TTL, depth,
// callers, and each condition's syntax, types and worst-case cost. An error
// names the rule and, for CEL, the position:
//
//	policy: rule "marketing-may-ask-gdpr-agent": ERROR: when:1:20: undefined field 'gruops'
//
// so a server whose policy it cannot enforce refuses to start.
//
// # What a condition sees
//
//	user.iss, user.sub, user.email   string  the user's verified token claims ("" when absent)
//	user.groups                      list    the token's groups
//	agent.id, agent.name             string  the agent's SPIFFE ID and declared name
//	agent.ceiling                    list    every scope the agent may ever hold
//	caller                           string  the SPIFFE ID of the peer that asked, "" on the local socket
//	request.scopes                   list    the scopes asked for
//	request.ttl                      duration the lifetime asked for, 0s when not given
//	request.intent                   string  the user's stated purpose
//
// The variables are typed objects: a misspelt field is a compile error, not
// a rule that silently never matches. has(user.email) is false when the token
// had no email. Besides the CEL standard library (in, size, startsWith,
// endsWith, contains, matches, exists, all, duration(...)), the strings
// extension (lowerAscii, split, ...) and the sets extension
// (sets.intersects, sets.contains) are available.
//
// # Deciding
//
//	d, err := p.Decide(ctx, policy.Input{User: ..., Agent: ..., Caller: ..., Scopes: ..., TTL: ..., Intent: ...})
//
// Rules are tried in order and the first that applies wins, as in a
// firewall or Envoy RBAC: an operator reads the list top-down and puts the
// narrow rules first. A rule applies when its condition is true, the caller
// is the agent itself or one of the rule's Callers (CallerLocal admits the
// local admin socket), and the grant is not empty. The grant is the
// intersection of what was asked, the rule's Scopes and the agent's ceiling;
// the TTL is the one asked, capped at the rule's MaxTTL (the MaxTTL when none
// was asked). Asking for nothing that can be granted is a denial, never an
// empty delegation.
//
// A denial is a *Denial (errors.Is ErrDenied) whose text says which rules
// came close and why, and is safe to return to the caller:
//
//	policy: denied: no rule matches
//	policy: denied: rule "marketing-may-ask-gdpr-agent": caller not allowed
//	policy: denied: rule "staff": no requested scope can be granted
//
// A condition that fails to evaluate (an index out of range, the cost limit)
// denies the request and stops the evaluation: a later rule must not decide
// in place of a rule that could not. This is failing closed.
//
// # Cost
//
// Each condition has a cost limit (DefaultCostLimit, or WithCostLimit).
// Compile estimates every condition's worst case over the largest input
// Decide accepts (MaxGroups groups, delegation.MaxIntentLength bytes of
// intent...) and rejects a condition that could exceed it:
//
//	policy: rule "r": when has estimated worst-case cost 8391683, above the limit 100000
//
// Evaluation is also stopped at the limit, as a second fence. Decide refuses
// inputs past the bounds with ErrInvalidInput rather than evaluate them.
//
// # Sub-delegation
//
// A sub-delegation is not decided by the rules: it narrows a delegation the
// rules already granted. The server checks it with delegation.NewChild
// (scopes, expiry and the root rule's MaxDepth, recorded on the root) and
// AllowedSubAgent (the parent agent's declared sub-agents).
//
// A Policy is immutable and safe for concurrent use; to reload, compile a
// new one and swap the pointer.
package policy
