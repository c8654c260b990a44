package policy

import "errors"

// Sentinel errors callers branch on.
var (
	// ErrDenied is matched (errors.Is) by every denial Decide returns. The
	// error itself is a *Denial whose text is safe to return to the caller.
	ErrDenied = errors.New("policy: denied")
	// ErrInvalidInput is wrapped by Decide's errors for an Input outside the
	// bounds the policy was compiled against (a missing agent or user, too
	// many groups, a negative TTL...). These are the bounds that make the
	// compile-time cost estimate hold, so Decide refuses to guess past them.
	ErrInvalidInput = errors.New("policy: invalid input")
)

// Denial is the error Decide returns when no rule grants the request. It
// matches ErrDenied. Its text names rules and what stopped them, and for an
// evaluation error quotes CEL's message, which may quote a value of the input
// (a claim of the user's token the caller itself presented, a scope). It
// holds no token and no secret, so the server may return it to the caller as
// is: an operator debugging a refused request sees which rule came close.
type Denial struct {
	// Rule names the rule the denial is about: the first rule whose
	// condition matched but that could not grant, or the rule whose
	// evaluation failed. It is empty when no rule's condition matched.
	Rule string
	// Reason says why, e.g. "no rule matches" or
	// `rule "ops": caller not allowed`.
	Reason string
}

// Error returns "policy: denied: <reason>".
func (d *Denial) Error() string { return "policy: denied: " + d.Reason }

// Is makes errors.Is(err, ErrDenied) true for every *Denial.
func (d *Denial) Is(target error) bool { return target == ErrDenied }
