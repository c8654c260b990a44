package chart

import (
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// Every value in values.yaml has a row in the chart README, and every key
// the schema knows has a default in values.yaml (the schema's
// additionalProperties: false already makes lint fail on a value the schema
// does not know).
func TestValuesDocumented(t *testing.T) {
	values := readYAML(t, filepath.Join(chartDir, "values.yaml"))
	readme := string(readFile(t, filepath.Join(chartDir, "README.md")))
	var schema map[string]any
	if err := json.Unmarshal(readFile(t, filepath.Join(chartDir, "values.schema.json")), &schema); err != nil {
		t.Fatal(err)
	}
	defs := schema["$defs"].(map[string]any)
	resolve := func(n map[string]any) map[string]any {
		if ref, ok := n["$ref"].(string); ok {
			return defs[strings.TrimPrefix(ref, "#/$defs/")].(map[string]any)
		}
		return n
	}

	var leaves []string
	var walk func(prefix []string, v any, node map[string]any)
	walk = func(prefix []string, v any, node map[string]any) {
		node = resolve(node)
		props, ok := node["properties"].(map[string]any)
		m, isMap := v.(map[string]any)
		if !ok || !isMap || prefix[len(prefix)-1] == "resources" {
			leaves = append(leaves, strings.Join(prefix, "."))
			return
		}
		if node["additionalProperties"] != false {
			t.Errorf("%s: the schema does not refuse unknown keys", strings.Join(prefix, "."))
		}
		for k, sub := range props {
			if _, ok := m[k]; !ok {
				t.Errorf("%s.%s: in the schema, not in values.yaml", strings.Join(prefix, "."), k)
				continue
			}
			walk(append(slices.Clone(prefix), k), m[k], sub.(map[string]any))
		}
	}
	for k, sub := range schema["properties"].(map[string]any) {
		if _, ok := values[k]; !ok {
			t.Errorf("%s: in the schema, not in values.yaml", k)
			continue
		}
		walk([]string{k}, values[k], sub.(map[string]any))
	}
	if len(leaves) < 50 {
		t.Fatalf("only %d values found", len(leaves))
	}
	for _, leaf := range leaves {
		if !strings.Contains(readme, "| `"+leaf+"` |") {
			t.Errorf("%s is not documented in charts/agentid/README.md", leaf)
		}
	}
}
