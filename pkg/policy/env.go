package policy

import (
	"strings"

	"github.com/agentid/agentid/pkg/delegation"
	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/checker"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/ext"
	"github.com/google/cel-go/interpreter"
)

// Bounds on the Input that Decide accepts. The compile-time cost estimate of
// every rule assumes them, so an expression's worst case is known before the
// server starts; Decide rejects inputs past them with ErrInvalidInput.
const (
	// MaxGroups bounds the user's groups. Common providers cap the groups
	// claim well below this (Entra ID at 200, Okta at 100).
	MaxGroups = 512
	// MaxGroupLength bounds one group name in bytes.
	MaxGroupLength = 256
	// MaxAgentNameLength bounds the agent's declared name in bytes.
	MaxAgentNameLength = 256
	// MaxSPIFFEIDLength bounds the agent's and the caller's SPIFFE IDs in
	// bytes (the SPIFFE ID specification's recommended limit for URIs).
	MaxSPIFFEIDLength = 2048
	// MaxExpressionLength bounds a rule's `when` expression, in characters.
	MaxExpressionLength = 8192
)

// DefaultCostLimit is the cost limit of one rule's condition unless
// WithCostLimit sets another. CEL's cost unit is roughly one cheap operation
// (a comparison, a field access, ten bytes of a string scan). With the input
// bounds above, the conditions operators write estimate well below it:
// group membership ("x" in user.groups) at 514, a prefix test over every
// group at 3,075, a substring search over every group at 15,875. Lowercasing
// every group (147,971) or comparing every group with every requested scope
// (626,179) does not fit.
const DefaultCostLimit = 100_000

// newEnv builds the CEL environment every rule is compiled in: the four
// variables, the strings and sets extensions, and literal validators so a
// bad regex or duration in a rule fails at start-up.
func newEnv() (*cel.Env, error) {
	return cel.NewEnv(
		withObjectTypes(),
		cel.Variable("user", userType.celType),
		cel.Variable("agent", agentType.celType),
		cel.Variable("caller", cel.StringType),
		cel.Variable("request", requestType.celType),
		ext.Strings(),
		ext.Sets(),
		cel.ParserExpressionSizeLimit(MaxExpressionLength),
		cel.ASTValidators(
			cel.ValidateDurationLiterals(),
			cel.ValidateRegexLiterals(),
			cel.ValidateHomogeneousAggregateLiterals(),
		),
	)
}

// inputSizes gives the cost estimator the largest size (CEL size(): runes of
// a string, items of a list) of each variable-length input, keyed by its
// field path. Byte bounds are used for strings: a string never has more runes
// than bytes.
var inputSizes = map[string]uint64{
	"user.iss":              delegation.MaxIssuerLength,
	"user.sub":              delegation.MaxSubjectLength,
	"user.email":            delegation.MaxEmailLength,
	"user.groups":           MaxGroups,
	"user.groups.@items":    MaxGroupLength,
	"agent.id":              MaxSPIFFEIDLength,
	"agent.name":            MaxAgentNameLength,
	"agent.ceiling":         delegation.MaxScopes,
	"agent.ceiling.@items":  delegation.MaxScopeLength,
	"caller":                MaxSPIFFEIDLength,
	"request.scopes":        delegation.MaxScopes,
	"request.scopes.@items": delegation.MaxScopeLength,
	"request.intent":        delegation.MaxIntentLength,
}

// sizeEstimator is the checker.CostEstimator that knows the input bounds.
// Without it CEL assumes every list and string may be as long as 2^64-1 and no
// condition that touches user.groups would fit any limit.
type sizeEstimator struct{}

func (sizeEstimator) EstimateSize(node checker.AstNode) *checker.SizeEstimate {
	if max, ok := inputSizes[strings.Join(node.Path(), ".")]; ok {
		return &checker.SizeEstimate{Min: 0, Max: max}
	}
	return nil
}

func (sizeEstimator) EstimateCallCost(string, string, *checker.AstNode, []checker.AstNode) *checker.CallEstimate {
	return nil
}

// activation binds the four variables for one Decide call. It is built once
// and shared by every rule's evaluation, so a decision converts the input
// once, not once per rule.
type activation struct {
	user    *object
	agent   *object
	caller  ref.Val // types.String, boxed once
	request *object
}

var _ interpreter.Activation = (*activation)(nil)

func (a *activation) ResolveName(name string) (any, bool) {
	switch name {
	case "user":
		return a.user, true
	case "agent":
		return a.agent, true
	case "caller":
		return a.caller, true
	case "request":
		return a.request, true
	}
	return nil, false
}

func (a *activation) Parent() interpreter.Activation { return nil }
