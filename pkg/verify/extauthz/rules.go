package extauthz

import (
	"errors"
	"fmt"
	"reflect"
	"time"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common"
	"github.com/google/cel-go/ext"
)

// Rule is one route rule. Rules are tried in order; the first whose Match is
// true decides the request: allowed when Allow is true, denied (403)
// otherwise. A request no rule matches is denied: deny by default.
type Rule struct {
	// Name identifies the rule in denials, logs and metrics.
	Name string
	// Match is a CEL expression over `request` selecting the routes the
	// rule covers, e.g. `request.path.startsWith("/campaigns/")`. Empty
	// matches every request.
	Match string
	// Allow is a CEL expression over `request`, `agent`, `user`, `scopes`,
	// `delegation` and `delegated`, e.g.
	// `agent.startsWith("spiffe://example.org/agent/") && "campaigns:read" in scopes`.
	// It decides on both identities together. Required.
	Allow string
}

// Bounds on rules, checked by New.
const (
	// MaxRuleNameLength bounds a rule's name in bytes.
	MaxRuleNameLength = 128
	// MaxExpressionLength bounds an expression in characters.
	MaxExpressionLength = 4096
	// CostLimit bounds the evaluation cost of one expression; a rule that
	// exceeds it at run time denies the request.
	CostLimit = 100_000
)

// The CEL variables. Field names are the `cel` tags.
type celRequest struct {
	Method  string            `cel:"method"`
	Scheme  string            `cel:"scheme"`
	Host    string            `cel:"host"`
	Path    string            `cel:"path"`
	Query   string            `cel:"query"`
	Headers map[string]string `cel:"headers"`
}

type celUser struct {
	Iss   string `cel:"iss"`
	Sub   string `cel:"sub"`
	Email string `cel:"email"`
}

type celDelegation struct {
	ID        string    `cel:"id"`
	Root      string    `cel:"root"`
	Chain     []string  `cel:"chain"`
	ExpiresAt time.Time `cel:"expires_at"`
}

func newEnv(identity bool) (*cel.Env, error) {
	opts := []cel.EnvOption{
		ext.NativeTypes(ext.ParseStructTags(true),
			reflect.TypeFor[celRequest](), reflect.TypeFor[celUser](), reflect.TypeFor[celDelegation]()),
		cel.Variable("request", cel.ObjectType("extauthz.celRequest")),
		ext.Strings(),
		cel.ParserExpressionSizeLimit(MaxExpressionLength),
	}
	if identity {
		opts = append(opts,
			cel.Variable("agent", cel.StringType),
			cel.Variable("user", cel.ObjectType("extauthz.celUser")),
			cel.Variable("scopes", cel.ListType(cel.StringType)),
			cel.Variable("delegation", cel.ObjectType("extauthz.celDelegation")),
			cel.Variable("delegated", cel.BoolType),
		)
	}
	return cel.NewEnv(opts...)
}

type compiledRule struct {
	name         string
	match, allow cel.Program // match nil: every request
}

// compileRules checks and compiles rules; errors name the rule.
func compileRules(rules []Rule) ([]compiledRule, error) {
	if len(rules) == 0 {
		return nil, errors.New("extauthz: at least one rule is required (requests no rule matches are denied)")
	}
	routeEnv, err := newEnv(false)
	if err != nil {
		return nil, fmt.Errorf("extauthz: failed to build CEL environment: %w", err)
	}
	fullEnv, err := newEnv(true)
	if err != nil {
		return nil, fmt.Errorf("extauthz: failed to build CEL environment: %w", err)
	}
	seen := map[string]bool{}
	out := make([]compiledRule, 0, len(rules))
	for i, r := range rules {
		switch {
		case r.Name == "" || len(r.Name) > MaxRuleNameLength:
			return nil, fmt.Errorf("extauthz: rule %d: name must be 1..%d bytes", i, MaxRuleNameLength)
		case seen[r.Name]:
			return nil, fmt.Errorf("extauthz: rule %d: duplicate name %q", i, r.Name)
		case r.Allow == "":
			return nil, fmt.Errorf("extauthz: rule %q: allow is required", r.Name)
		}
		seen[r.Name] = true
		cr := compiledRule{name: r.Name}
		if r.Match != "" {
			if cr.match, err = compile(routeEnv, r.Match, "match"); err != nil {
				return nil, fmt.Errorf("extauthz: rule %q: %w", r.Name, err)
			}
		}
		if cr.allow, err = compile(fullEnv, r.Allow, "allow"); err != nil {
			return nil, fmt.Errorf("extauthz: rule %q: %w", r.Name, err)
		}
		out = append(out, cr)
	}
	return out, nil
}

func compile(env *cel.Env, expr, field string) (cel.Program, error) {
	ast, iss := env.CompileSource(common.NewStringSource(expr, field))
	if iss.Err() != nil {
		return nil, fmt.Errorf("%s: %w", field, iss.Err())
	}
	if !ast.OutputType().IsExactType(cel.BoolType) {
		return nil, fmt.Errorf("%s has type %s, want bool", field, ast.OutputType())
	}
	return env.Program(ast, cel.EvalOptions(cel.OptOptimize), cel.CostLimit(CostLimit))
}

// eval runs a compiled bool expression.
func eval(p cel.Program, vars map[string]any) (bool, error) {
	out, _, err := p.Eval(vars)
	if err != nil {
		return false, err
	}
	b, ok := out.Value().(bool)
	if !ok {
		return false, fmt.Errorf("result %v is not a bool", out)
	}
	return b, nil
}
