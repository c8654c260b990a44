package extauthz

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
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
	Method string `cel:"method"`
	Scheme string `cel:"scheme"`
	Host   string `cel:"host"`
	// Path is the normalised path (NormalizePath), what rules should test.
	Path string `cel:"path"`
	// RawPath is the path as the client sent it, without the query.
	RawPath string            `cel:"raw_path"`
	Query   string            `cel:"query"`
	Headers map[string]string `cel:"headers"`
}

// NormalizePath returns the one spelling of an HTTP request path (without
// its query) that rules see, so that a rule denying /admin/ cannot be
// passed by another spelling an upstream reads as the same path:
//
//   - percent-encoded unreserved characters (ALPHA DIGIT - . _ ~) are
//     decoded, other percent-encodings keep their byte with upper-case hex
//     (%2e → ".", %41 → "A", %3b → %3B);
//   - runs of slashes become one ("//admin" → "/admin");
//   - dot segments are removed as RFC 3986 section 5.2.4 says ("/a/./b/../c"
//     → "/a/c"; ".." at the root stays at the root), after the decoding, so
//     "/%2e%2e/admin" is "/admin".
//
// It refuses (ErrBadPath) what it cannot make one spelling of: a path not
// starting with "/"; an encoded "/" (%2F) or "\" (%5C), and a raw "\",
// which upstreams split on or not as they like; an encoded "%" followed by
// two hex digits (%252e), which an upstream decoding twice reads as another
// byte; ";", which servlet containers take as the start of a segment
// parameter and drop ("/admin;x/secret" is their "/admin/secret"); a
// malformed "%" escape; and any byte that RFC 3986 does not allow in a path
// (controls, space, non-ASCII, the quote, angle brackets, caret, backtick,
// braces, the bar and "#").
func NormalizePath(raw string) (string, error) {
	if !strings.HasPrefix(raw, "/") {
		return "", fmt.Errorf("%w: does not start with /", ErrBadPath)
	}
	var b strings.Builder
	b.Grow(len(raw))
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		switch {
		case c == '%':
			if i+2 >= len(raw) || !isHex(raw[i+1]) || !isHex(raw[i+2]) {
				return "", fmt.Errorf("%w: malformed percent-encoding at byte %d", ErrBadPath, i)
			}
			d := unhex(raw[i+1])<<4 | unhex(raw[i+2])
			switch {
			case d == '/' || d == '\\':
				return "", fmt.Errorf("%w: encoded %q at byte %d", ErrBadPath, d, i)
			case isUnreserved(d):
				b.WriteByte(d)
			default:
				b.WriteByte('%')
				b.WriteByte(upperHex[d>>4])
				b.WriteByte(upperHex[d&0xf])
			}
			i += 2
		case c == '\\':
			return "", fmt.Errorf("%w: backslash at byte %d", ErrBadPath, i)
		case c == ';':
			return "", fmt.Errorf("%w: segment parameter (;) at byte %d", ErrBadPath, i)
		case c == '/' || isUnreserved(c) || strings.IndexByte("!$&'()*+,=:@", c) >= 0:
			b.WriteByte(c)
		default:
			return "", fmt.Errorf("%w: byte 0x%02x at byte %d is not allowed in a path", ErrBadPath, c, i)
		}
	}
	out := b.String()
	// An encoded '%' before two hex digits is a byte encoded twice, checked
	// on the decoded form: "%25%61" + "0" is "%25a0" too.
	for i := strings.Index(out, "%25"); i >= 0; {
		if i+4 < len(out) && isHex(out[i+3]) && isHex(out[i+4]) {
			return "", fmt.Errorf("%w: double percent-encoding", ErrBadPath)
		}
		next := strings.Index(out[i+3:], "%25")
		if next < 0 {
			break
		}
		i += 3 + next
	}
	return removeDotSegments(out), nil
}

// removeDotSegments merges slashes and removes "." and ".." segments of an
// absolute path. A path ending in a dot segment keeps its trailing slash
// ("/a/b/.." is "/a/"), as RFC 3986's algorithm gives.
func removeDotSegments(p string) string {
	segs := strings.Split(p[1:], "/")
	out := make([]string, 0, len(segs))
	trailing := false
	for i, seg := range segs {
		last := i == len(segs)-1
		switch seg {
		case "":
			// An empty segment is a doubled slash, or the end of a path
			// ending in "/".
			trailing = last
			continue
		case ".":
			trailing = last
			continue
		case "..":
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
			trailing = last
			continue
		}
		out = append(out, seg)
		trailing = false
	}
	res := "/" + strings.Join(out, "/")
	if trailing && len(out) > 0 {
		res += "/"
	}
	return res
}

const upperHex = "0123456789ABCDEF"

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

// isUnreserved: RFC 3986 unreserved characters.
func isUnreserved(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~'
}

// requestVar builds the rules' request variable from Envoy's attributes,
// with the path normalised (NormalizePath).
func requestVar(method, scheme, host, pathAndQuery string, headers map[string]string) (celRequest, error) {
	raw, query, _ := strings.Cut(pathAndQuery, "?")
	norm, err := NormalizePath(raw)
	if err != nil {
		return celRequest{}, err
	}
	return celRequest{Method: method, Scheme: scheme, Host: host, Path: norm, RawPath: raw, Query: query, Headers: headers}, nil
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
