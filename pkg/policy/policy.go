package policy

import (
	"errors"
	"fmt"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/agentid/agentid/pkg/delegation"
	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// MaxRuleNameLength bounds a rule's name in bytes.
const MaxRuleNameLength = 128

// CallerLocal in a rule's Callers admits requests that arrive on the
// server's local unix socket (Input.Caller is zero). That socket is guarded by
// file permissions, not by a SPIFFE ID, so no rule admits it unless it says
// so.
const CallerLocal = "local"

// Rule is one policy rule as the operator writes it in the server's
// configuration. It is plain data: the server decodes its own config format
// and converts. Compile validates every field.
type Rule struct {
	// Name identifies the rule in errors, denials and audit events: unique
	// within a policy, printable (it reaches logs and callers), at most
	// MaxRuleNameLength bytes.
	Name string
	// When is a CEL expression of type bool over the variables user, agent,
	// caller and request (see the package documentation). The rule applies
	// only when it evaluates to true.
	When string
	// Scopes are the most this rule grants; the grant is the intersection of
	// these, the request and the agent's ceiling. At least one.
	Scopes []string
	// MaxTTL caps the delegation's lifetime; a longer request is shortened
	// to it, a request without a TTL gets it. Must be positive.
	MaxTTL time.Duration
	// MaxDepth is the longest chain of agents a delegation made under this
	// rule may grow into by sub-delegation: 1 forbids sub-delegation.
	// 1..delegation.MaxDepthLimit.
	MaxDepth int
	// Callers are the SPIFFE IDs allowed to create delegations under this
	// rule, besides the agent itself, which is always allowed to ask for
	// itself. Empty means only the agent itself. CallerLocal admits the
	// local admin socket.
	Callers []string
}

// Option changes how Compile builds a Policy.
type Option func(*options)

type options struct {
	costLimit uint64
}

// WithCostLimit sets the cost limit of each rule's condition (default
// DefaultCostLimit). A rule whose worst-case estimated cost exceeds it fails
// to compile; evaluation is also stopped at the limit, as a second fence.
func WithCostLimit(limit uint64) Option {
	return func(o *options) { o.costLimit = limit }
}

// Policy is a compiled, immutable list of rules. It is safe for concurrent
// use; to reload, compile a new Policy and swap the pointer.
type Policy struct {
	rules []compiledRule
}

type compiledRule struct {
	name       string
	program    cel.Program
	scopes     delegation.ScopeSet
	maxTTL     time.Duration
	maxDepth   int
	callers    []spiffeid.ID
	allowLocal bool
	maxCost    uint64 // the condition's estimated worst-case cost
}

// Compile validates the rules and compiles their conditions. Any problem
// stops it with an error naming the rule, e.g.
// `policy: rule "ops": max_depth 0 outside 1..16` or the CEL error with its
// position, so a server that cannot enforce its policy refuses to start.
// An empty list is an error too: a policy that can only deny is a
// misconfiguration, not a choice.
func Compile(rules []Rule, opts ...Option) (*Policy, error) {
	o := options{costLimit: DefaultCostLimit}
	for _, opt := range opts {
		opt(&o)
	}
	if o.costLimit == 0 {
		return nil, errors.New("policy: cost limit must be positive")
	}
	if len(rules) == 0 {
		return nil, errors.New("policy: no rules")
	}
	env, err := newEnv()
	if err != nil {
		return nil, fmt.Errorf("policy: failed to build CEL environment: %w", err)
	}
	p := &Policy{rules: make([]compiledRule, 0, len(rules))}
	seen := make(map[string]bool, len(rules))
	for i, r := range rules {
		if r.Name == "" {
			return nil, fmt.Errorf("policy: rules[%d]: name is empty", i)
		}
		if problem := nameProblem(r.Name); problem != "" {
			return nil, fmt.Errorf("policy: rule %q: name %s", r.Name, problem)
		}
		if seen[r.Name] {
			return nil, fmt.Errorf("policy: rule %q: duplicate name", r.Name)
		}
		seen[r.Name] = true
		cr, err := compileRule(env, r, o.costLimit)
		if err != nil {
			return nil, fmt.Errorf("policy: rule %q: %w", r.Name, err)
		}
		p.rules = append(p.rules, cr)
	}
	return p, nil
}

func compileRule(env *cel.Env, r Rule, costLimit uint64) (compiledRule, error) {
	scopes, err := delegation.ParseScopes(r.Scopes)
	switch {
	case err != nil:
		return compiledRule{}, fmt.Errorf("scopes: %w", err)
	case scopes.IsEmpty():
		return compiledRule{}, errors.New("scopes: none")
	case r.MaxTTL <= 0:
		return compiledRule{}, fmt.Errorf("max_ttl %s is not positive", r.MaxTTL)
	case r.MaxDepth < 1 || r.MaxDepth > delegation.MaxDepthLimit:
		return compiledRule{}, fmt.Errorf("max_depth %d outside 1..%d", r.MaxDepth, delegation.MaxDepthLimit)
	case r.When == "":
		return compiledRule{}, errors.New("when is empty")
	}
	cr := compiledRule{name: r.Name, scopes: scopes, maxTTL: r.MaxTTL, maxDepth: r.MaxDepth}
	for _, c := range r.Callers {
		if c == CallerLocal {
			cr.allowLocal = true
			continue
		}
		id, err := spiffeid.FromString(c)
		if err != nil {
			return compiledRule{}, fmt.Errorf("callers: %q: %w", c, err)
		}
		cr.callers = append(cr.callers, id)
	}

	ast, iss := env.CompileSource(common.NewStringSource(r.When, "when"))
	if iss.Err() != nil {
		return compiledRule{}, iss.Err()
	}
	if !ast.OutputType().IsExactType(cel.BoolType) {
		return compiledRule{}, fmt.Errorf("when has type %s, want bool", ast.OutputType())
	}
	est, err := env.EstimateCost(ast, sizeEstimator{})
	if err != nil {
		return compiledRule{}, fmt.Errorf("failed to estimate cost: %w", err)
	}
	if est.Max > costLimit {
		return compiledRule{}, fmt.Errorf("when has estimated worst-case cost %d, above the limit %d", est.Max, costLimit)
	}
	cr.maxCost = est.Max
	cr.program, err = env.Program(ast,
		cel.EvalOptions(cel.OptOptimize),
		cel.CostLimit(costLimit),
	)
	if err != nil {
		return compiledRule{}, err
	}
	return cr, nil
}

func nameProblem(name string) string {
	if len(name) > MaxRuleNameLength {
		return fmt.Sprintf("is %d bytes, at most %d", len(name), MaxRuleNameLength)
	}
	if !utf8.ValidString(name) {
		return "is not valid UTF-8"
	}
	for _, r := range name {
		if !unicode.IsPrint(r) {
			return fmt.Sprintf("contains the non-printable character %U", r)
		}
	}
	return ""
}
