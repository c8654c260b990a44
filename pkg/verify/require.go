package verify

import (
	"fmt"
	"strings"

	"github.com/agentid/agentid/pkg/delegation"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// A Requirement is an authorization decision on a verified principal: nil to
// allow, or an error wrapping ErrInsufficientScope, ErrAgentNotAllowed or
// ErrUserNotAllowed (ClassForbidden). Authorize on both identities: what the
// agent is (RequireAgent) and what the user delegated (RequireScopes,
// RequireUser).
type Requirement func(p *Principal) error

// Check runs reqs in order and returns the first failure.
func (p *Principal) Check(reqs ...Requirement) error {
	for _, r := range reqs {
		if err := r(p); err != nil {
			return err
		}
	}
	return nil
}

// RequireScopes requires every one of scopes to be delegated. Scope names are
// compared exactly; a malformed name can never be held, so it always fails.
func RequireScopes(scopes ...string) Requirement {
	want := make([]delegation.Scope, 0, len(scopes))
	var bad []string
	for _, s := range scopes {
		sc, err := delegation.ParseScope(s)
		if err != nil {
			bad = append(bad, s)
			continue
		}
		want = append(want, sc)
	}
	return func(p *Principal) error {
		if len(bad) > 0 {
			return fmt.Errorf("%w: malformed required scope %q", ErrInsufficientScope, bad[0])
		}
		var missing []string
		for _, sc := range want {
			if !p.Scopes.Contains(sc) {
				missing = append(missing, sc.String())
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("%w: missing %s", ErrInsufficientScope, strings.Join(missing, " "))
		}
		return nil
	}
}

// RequireAgent allows only the agents whose SPIFFE ID is one of ids.
func RequireAgent(ids ...spiffeid.ID) Requirement {
	allowed := append([]spiffeid.ID(nil), ids...)
	return func(p *Principal) error {
		for _, id := range allowed {
			if p.Agent == id {
				return nil
			}
		}
		return fmt.Errorf("%w: %s", ErrAgentNotAllowed, p.Agent)
	}
}

// RequireAgentPrefix allows the agents whose SPIFFE ID is prefix or lies
// under it, segment by segment: prefix spiffe://example.org/agent allows
// spiffe://example.org/agent/x but not spiffe://example.org/agents.
func RequireAgentPrefix(prefix spiffeid.ID) Requirement {
	return func(p *Principal) error {
		if p.Agent.MemberOf(prefix.TrustDomain()) {
			path, want := p.Agent.Path(), prefix.Path()
			if path == want || want == "" || strings.HasPrefix(path, want+"/") {
				return nil
			}
		}
		return fmt.Errorf("%w: %s is not under %s", ErrAgentNotAllowed, p.Agent, prefix)
	}
}

// RequireUser allows only delegations from the given subjects of issuer (any
// subject of issuer when subjects is empty). Users are matched on issuer and
// subject, never on email. A plain token, which has no user, fails.
func RequireUser(issuer string, subjects ...string) Requirement {
	subs := append([]string(nil), subjects...)
	return func(p *Principal) error {
		if p.User.IsZero() {
			return fmt.Errorf("%w: token has no delegating user", ErrUserNotAllowed)
		}
		if p.User.Issuer() == issuer {
			if len(subs) == 0 {
				return nil
			}
			for _, s := range subs {
				if p.User.Subject() == s {
					return nil
				}
			}
		}
		return fmt.Errorf("%w: %s", ErrUserNotAllowed, p.User)
	}
}
