package chart

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	composer "github.com/agentid/agentid/pkg/plugin/credentialcomposer/delegation"
	"github.com/agentid/agentid/pkg/plugin/workloadattestor/aiagent"
	"github.com/hashicorp/hcl"
	"github.com/hashicorp/hcl/hcl/ast"
	"github.com/hashicorp/hcl/hcl/printer"
	configv1 "github.com/spiffe/spire-plugin-sdk/proto/spire/service/common/config/v1"
	"gopkg.in/yaml.v3"
)

// spirePlugin is one plugin section, decoded as SPIRE v1.13's catalog does
// (pkg/common/catalog/config.go hclPluginConfig).
type spirePlugin struct {
	PluginCmd      string   `hcl:"plugin_cmd"`
	PluginChecksum string   `hcl:"plugin_checksum"`
	PluginData     ast.Node `hcl:"plugin_data"`
}

// spireConfig is the part of a spire-server or spire-agent configuration
// the tests compare.
type spireConfig struct {
	Server *struct {
		SocketPath  string `hcl:"socket_path"`
		TrustDomain string `hcl:"trust_domain"`
		JWTIssuer   string `hcl:"jwt_issuer"`
	} `hcl:"server"`
	Agent *struct {
		SocketPath    string `hcl:"socket_path"`
		TrustDomain   string `hcl:"trust_domain"`
		ServerAddress string `hcl:"server_address"`
		ServerPort    string `hcl:"server_port"`

		AllowUnauthenticatedVerifiers bool `hcl:"allow_unauthenticated_verifiers"`
	} `hcl:"agent"`
	Plugins []map[string]map[string]spirePlugin `hcl:"plugins"`
}

func parseSPIREConfig(t testing.TB, text string) *spireConfig {
	t.Helper()
	var c spireConfig
	if err := hcl.Decode(&c, text); err != nil {
		t.Fatalf("SPIRE configuration does not decode: %v\n%s", err, text)
	}
	return &c
}

// plugin returns the plugin of type and name, failing without one.
func (c *spireConfig) plugin(t testing.TB, typ, name string) spirePlugin {
	t.Helper()
	var found []spirePlugin
	for _, m := range c.Plugins {
		if p, ok := m[typ][name]; ok {
			found = append(found, p)
		}
	}
	if len(found) != 1 {
		t.Fatalf("want one %s %q plugin, have %d", typ, name, len(found))
	}
	return found[0]
}

// data returns plugin_data as the text SPIRE hands the plugin.
func (p spirePlugin) data(t testing.TB) string {
	t.Helper()
	if p.PluginData == nil {
		t.Fatal("plugin has no plugin_data")
	}
	var b bytes.Buffer
	if err := printer.DefaultConfig.Fprint(&b, p.PluginData); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// validatePlugin runs a plugin's own Validate on its plugin_data and fails
// the test when the plugin refuses it.
func validatePlugin(t testing.TB, which, trustDomain, data string) {
	t.Helper()
	req := &configv1.ValidateRequest{
		HclConfiguration:  data,
		CoreConfiguration: &configv1.CoreConfiguration{TrustDomain: trustDomain},
	}
	var resp *configv1.ValidateResponse
	var err error
	switch which {
	case "composer":
		resp, err = composer.New(composer.Options{}).Validate(context.Background(), req)
	case "attestor":
		resp, err = aiagent.New().Validate(context.Background(), req)
	default:
		t.Fatalf("unknown plugin %s", which)
	}
	if err != nil || !resp.GetValid() {
		t.Fatalf("%s refuses its plugin_data: %v %v\n%s", which, err, resp.GetNotes(), data)
	}
}

// hclString decodes plugin_data text into a map, for comparing values.
func hclMap(t testing.TB, data string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := hcl.Decode(&m, data); err != nil {
		t.Fatal(err)
	}
	return m
}

// jsonPluginData turns a plugin_data map from Helm values (as the hardened
// charts write it, in JSON) into the text SPIRE would hand the plugin.
func jsonPluginData(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	file, err := hcl.ParseBytes(b)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := printer.DefaultConfig.Fprint(&out, file.Node); err != nil {
		t.Fatal(err)
	}
	return out.String()
}

// pinnedChecksums reads charts/agentid/plugin-checksums.yaml.
func pinnedChecksums(t testing.TB) map[string]map[string]string {
	t.Helper()
	var file map[string]any
	b := readFile(t, chartDir+"/plugin-checksums.yaml")
	if err := yaml.Unmarshal(b, &file); err != nil {
		t.Fatal(err)
	}
	sums := map[string]map[string]string{}
	for arch, v := range file {
		m, ok := v.(map[string]any)
		if !ok {
			continue
		}
		sums[arch] = map[string]string{}
		for plugin, sum := range m {
			sums[arch][plugin], _ = sum.(string)
		}
	}
	return sums
}

// replacePrefix rewrites every occurrence of a path prefix in plugin_data,
// so that files the pod would mount can be read from a test directory.
func replacePrefix(data, from, to string) string {
	return strings.ReplaceAll(data, `"`+from+`/`, `"`+to+`/`)
}
