package policy

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/agentid/agentid/pkg/delegation"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// User is the delegating user as the condition sees it: the verified claims
// of their OIDC token. In CEL: user.iss, user.sub, user.email, user.groups.
type User struct {
	// Issuer is the token's iss; required.
	Issuer string
	// Subject is the token's sub; required.
	Subject string
	// Email is the token's email, "" when absent (has(user.email) is false).
	Email string
	// Groups are the token's groups claim, at most MaxGroups of at most
	// MaxGroupLength bytes each.
	Groups []string
}

// Agent is the agent a delegation is asked for, as declared by the operator.
// In CEL: agent.id (a string), agent.name, agent.ceiling (a list of scopes).
type Agent struct {
	// ID is the agent's SPIFFE ID; required.
	ID spiffeid.ID
	// Name is the agent's declared name.
	Name string
	// Ceiling is every scope the agent may ever hold. No rule grants past it.
	Ceiling delegation.ScopeSet
}

// Input is one request for a root delegation.
type Input struct {
	// User is the delegating user, from their verified token.
	User User
	// Agent is the declared agent the delegation is for.
	Agent Agent
	// Caller is the authenticated SPIFFE ID of the peer that asked, or zero
	// when the request came on the local admin socket. In CEL: caller, a
	// string, "" for the local socket.
	Caller spiffeid.ID
	// Scopes are the scopes asked for. In CEL: request.scopes.
	Scopes delegation.ScopeSet
	// TTL is the lifetime asked for; 0 asks for the rule's MaxTTL. In CEL:
	// request.ttl, a duration, as asked (0s when not given).
	TTL time.Duration
	// Intent is the user's stated purpose (see delegation.Intent), at most
	// delegation.MaxIntentLength bytes. In CEL: request.intent.
	Intent string
}

// Decision is a grant.
type Decision struct {
	// Rule names the rule that granted.
	Rule string
	// Scopes are the granted scopes: asked ∩ rule ∩ agent ceiling, never
	// empty. They may be fewer than asked: the caller sees the difference in
	// the delegation it gets back.
	Scopes delegation.ScopeSet
	// TTL is the granted lifetime: the requested TTL capped at the rule's
	// MaxTTL, or MaxTTL when none was requested.
	TTL time.Duration
	// MaxDepth is the rule's MaxDepth, to be recorded on the root delegation;
	// it bounds every sub-delegation made under it.
	MaxDepth int
}

// Decide evaluates the rules in order and returns the grant of the first rule
// that applies. A rule applies when its condition is true, the caller is the
// agent itself or in the rule's callers, and the grant (asked ∩ rule scopes ∩
// agent ceiling) is not empty; a rule whose condition is true but that fails
// one of the other two is passed over, and the denial says why.
//
// Errors:
//   - a *Denial (errors.Is ErrDenied) when no rule applies, or when a
//     condition fails to evaluate: that stops the evaluation (fail closed),
//     because letting a later rule decide would un-shadow it;
//   - ErrInvalidInput when the input is outside the package's bounds;
//   - the context's error when ctx ends between two rules. Each rule's
//     evaluation is bounded by the cost limit, so ctx is checked before each
//     rule rather than inside one.
func (p *Policy) Decide(ctx context.Context, in Input) (Decision, error) {
	if err := in.validate(); err != nil {
		return Decision{}, err
	}
	if in.Scopes.IsEmpty() {
		return Decision{}, &Denial{Reason: "no scope requested"}
	}
	act := newActivation(in)

	var passedOver []string
	firstPassed := ""
	passOver := func(r *compiledRule, why string) {
		if firstPassed == "" {
			firstPassed = r.name
		}
		passedOver = append(passedOver, fmt.Sprintf("rule %q: %s", r.name, why))
	}
	for i := range p.rules {
		if err := ctx.Err(); err != nil {
			return Decision{}, fmt.Errorf("policy: %w", err)
		}
		r := &p.rules[i]
		out, _, err := r.program.Eval(act)
		if err != nil {
			return Decision{}, &Denial{
				Rule:   r.name,
				Reason: fmt.Sprintf("rule %q: evaluation failed, later rules not evaluated: %v", r.name, err),
			}
		}
		matched, ok := out.Value().(bool)
		if !ok {
			// Compile admits only bool conditions; this is a CEL bug, and a
			// bug denies.
			return Decision{}, &Denial{
				Rule:   r.name,
				Reason: fmt.Sprintf("rule %q: evaluation failed, later rules not evaluated: result is %s, not bool", r.name, out.Type()),
			}
		}
		if !matched {
			continue
		}
		if !r.callerAllowed(in.Caller, in.Agent.ID) {
			passOver(r, "caller not allowed")
			continue
		}
		granted := in.Scopes.Intersect(r.scopes).Intersect(in.Agent.Ceiling)
		if granted.IsEmpty() {
			passOver(r, "no requested scope can be granted")
			continue
		}
		ttl := in.TTL
		if ttl == 0 || ttl > r.maxTTL {
			ttl = r.maxTTL
		}
		return Decision{Rule: r.name, Scopes: granted, TTL: ttl, MaxDepth: r.maxDepth}, nil
	}
	if len(passedOver) == 0 {
		return Decision{}, &Denial{Reason: "no rule matches"}
	}
	return Decision{}, &Denial{Rule: firstPassed, Reason: strings.Join(passedOver, "; ")}
}

// newActivation converts the input to the values the conditions see, once
// for all rules.
func newActivation(in Input) *activation {
	return &activation{
		user: &object{typ: userType, fields: []ref.Val{
			userIss:    types.String(in.User.Issuer),
			userSub:    types.String(in.User.Subject),
			userEmail:  types.String(in.User.Email),
			userGroups: stringList(in.User.Groups),
		}},
		agent: &object{typ: agentType, fields: []ref.Val{
			agentID:      types.String(in.Agent.ID.String()),
			agentName:    types.String(in.Agent.Name),
			agentCeiling: stringList(in.Agent.Ceiling.Strings()),
		}},
		caller: types.String(in.Caller.String()),
		request: &object{typ: requestType, fields: []ref.Val{
			requestScopes: stringList(in.Scopes.Strings()),
			requestTTL:    types.Duration{Duration: in.TTL},
			requestIntent: types.String(in.Intent),
		}},
	}
}

// callerAllowed reports whether caller may create delegations for agent under
// r: it is the agent itself, one of the rule's callers, or the local socket
// where the rule admits it.
func (r *compiledRule) callerAllowed(caller, agent spiffeid.ID) bool {
	if caller.IsZero() {
		return r.allowLocal
	}
	return caller == agent || slices.Contains(r.callers, caller)
}

func (in *Input) validate() error {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidInput, fmt.Sprintf(format, args...))
	}
	switch {
	case in.User.Issuer == "":
		return fail("user issuer is empty")
	case in.User.Subject == "":
		return fail("user subject is empty")
	case len(in.User.Issuer) > delegation.MaxIssuerLength:
		return fail("user issuer is %d bytes, at most %d", len(in.User.Issuer), delegation.MaxIssuerLength)
	case len(in.User.Subject) > delegation.MaxSubjectLength:
		return fail("user subject is %d bytes, at most %d", len(in.User.Subject), delegation.MaxSubjectLength)
	case len(in.User.Email) > delegation.MaxEmailLength:
		return fail("user email is %d bytes, at most %d", len(in.User.Email), delegation.MaxEmailLength)
	case len(in.User.Groups) > MaxGroups:
		return fail("user has %d groups, at most %d", len(in.User.Groups), MaxGroups)
	case in.Agent.ID.IsZero():
		return fail("agent id is empty")
	case len(in.Agent.ID.String()) > MaxSPIFFEIDLength:
		return fail("agent id is %d bytes, at most %d", len(in.Agent.ID.String()), MaxSPIFFEIDLength)
	case len(in.Agent.Name) > MaxAgentNameLength:
		return fail("agent name is %d bytes, at most %d", len(in.Agent.Name), MaxAgentNameLength)
	case len(in.Caller.String()) > MaxSPIFFEIDLength:
		return fail("caller id is %d bytes, at most %d", len(in.Caller.String()), MaxSPIFFEIDLength)
	case in.TTL < 0:
		return fail("ttl %s is negative", in.TTL)
	case len(in.Intent) > delegation.MaxIntentLength:
		return fail("intent is %d bytes, at most %d", len(in.Intent), delegation.MaxIntentLength)
	}
	for i, g := range in.User.Groups {
		if len(g) > MaxGroupLength {
			return fail("user group %d is %d bytes, at most %d", i, len(g), MaxGroupLength)
		}
	}
	return nil
}

// AllowedSubAgent reports whether agent is among allowed, the sub-agents a
// parent agent declares. It is an exact match: sub-delegation widens who acts
// for the user, so no pattern or trust-domain wildcard is honoured. A zero
// agent is never allowed.
func AllowedSubAgent(allowed []spiffeid.ID, agent spiffeid.ID) bool {
	return !agent.IsZero() && slices.Contains(allowed, agent)
}
