package istio_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/agentid/agentid/pkg/claims"
	"github.com/agentid/agentid/pkg/verify"
	"github.com/agentid/agentid/pkg/verify/extauthz"
	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"gopkg.in/yaml.v3"
)

// documents returns every YAML document of the example, by file.
func documents(t *testing.T) map[string][]map[string]any {
	t.Helper()
	files, err := filepath.Glob("*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no YAML files: %v", err)
	}
	out := map[string][]map[string]any{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		for {
			var doc map[string]any
			if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			out[f] = append(out[f], doc)
		}
	}
	return out
}

// walk calls fn for every map in v, with its key path.
func walk(v any, fn func(m map[string]any)) {
	switch x := v.(type) {
	case map[string]any:
		fn(x)
		for _, c := range x {
			walk(c, fn)
		}
	case []any:
		for _, c := range x {
			walk(c, fn)
		}
	}
}

var claimKey = regexp.MustCompile(`^request\.auth\.claims((?:\[[^\[\]]+\])+)$`)

func isClaimPath(path []string) bool {
	return slices.ContainsFunc(claims.Paths(), func(p []string) bool { return slices.Equal(p, path) })
}

func TestClaimPathsExist(t *testing.T) {
	var checked []string
	for file, docs := range documents(t) {
		for _, doc := range docs {
			walk(doc, func(m map[string]any) {
				if key, ok := m["key"].(string); ok && strings.HasPrefix(key, "request.auth.claims") {
					match := claimKey.FindStringSubmatch(key)
					if match == nil {
						t.Errorf("%s: malformed claim key %q", file, key)
						return
					}
					path := strings.Split(strings.Trim(match[1], "[]"), "][")
					if !isClaimPath(path) {
						t.Errorf("%s: %q names %v, not a claim of pkg/claims (%v)", file, key, path, claims.Paths())
					}
					checked = append(checked, key)
				}
				if claim, ok := m["claim"].(string); ok {
					if path := strings.Split(claim, "."); !isClaimPath(path) {
						t.Errorf("%s: outputClaimToHeaders claim %q is not a claim of pkg/claims", file, claim)
					}
					checked = append(checked, claim)
				}
			})
		}
	}
	// The example must keep constraining the user, the scope and the chain.
	for _, want := range []string{"request.auth.claims[principal][sub]", "request.auth.claims[scope]", "request.auth.claims[delegation][chain]"} {
		if !slices.Contains(checked, want) {
			t.Errorf("no policy uses %s", want)
		}
	}
}

// The extension provider the CUSTOM policy names is the one meshconfig.yaml
// declares.
func TestCustomProviderDeclared(t *testing.T) {
	docs := documents(t)
	var providers, used []string
	for _, doc := range docs["meshconfig.yaml"] {
		walk(doc, func(m map[string]any) {
			if _, ok := m["envoyExtAuthzGrpc"]; ok {
				providers = append(providers, m["name"].(string))
			}
		})
	}
	for _, doc := range docs["authorizationpolicy.yaml"] {
		if spec, ok := doc["spec"].(map[string]any); ok && spec["action"] == "CUSTOM" {
			used = append(used, spec["provider"].(map[string]any)["name"].(string))
		}
	}
	if len(used) == 0 || len(providers) == 0 {
		t.Fatalf("providers %v, used %v", providers, used)
	}
	for _, u := range used {
		if !slices.Contains(providers, u) {
			t.Errorf("CUSTOM provider %q is not declared in meshconfig.yaml (%v)", u, providers)
		}
	}
}

// agentid-extauthz's configuration in the ConfigMap decodes and its rules
// compile.
func TestExtauthzRulesCompile(t *testing.T) {
	var data string
	for _, doc := range documents(t)["extauthz.yaml"] {
		if doc["kind"] == "ConfigMap" {
			data = doc["data"].(map[string]any)["extauthz.yaml"].(string)
		}
	}
	var cfg struct {
		TrustDomains []string        `yaml:"trust_domains"`
		Audiences    []string        `yaml:"audiences"`
		Rules        []extauthz.Rule `yaml:"rules"`
	}
	if err := yaml.Unmarshal([]byte(data), &cfg); err != nil || len(cfg.Rules) == 0 {
		t.Fatalf("ConfigMap config: %v", err)
	}
	var tds []spiffeid.TrustDomain
	for _, td := range cfg.TrustDomains {
		tds = append(tds, spiffeid.RequireTrustDomainFromString(td))
	}
	v, err := verify.New(verify.Config{Bundles: jwtbundle.NewSet(), Audiences: cfg.Audiences, TrustDomains: tds, InsecureNoRevocation: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := extauthz.New(extauthz.Config{Verifier: v, Rules: cfg.Rules}); err != nil {
		t.Fatal(err)
	}
}
