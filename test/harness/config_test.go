package harness

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// sha256("abc"), FIPS 180-2 appendix B.1.
const abcSHA256 = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"

func writeExecutable(t *testing.T, content string, mode os.FileMode) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "plugin")
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestExternalPluginHCL(t *testing.T) {
	cmd := writeExecutable(t, "abc", 0o755)
	p := ExternalPlugin{
		Name: "aiagent",
		Cmd:  cmd,
		Args: []string{"-v", `say "hi"`},
		Data: "socket_path = \"/tmp/x.sock\"\nnested {\n  a = 1\n}",
	}
	got, err := p.hcl("WorkloadAttestor")
	if err != nil {
		t.Fatal(err)
	}
	want := `  WorkloadAttestor "aiagent" {
    plugin_cmd = "` + cmd + `"
    plugin_args = ["-v", "say \"hi\""]
    plugin_checksum = "` + abcSHA256 + `"
    plugin_data {
      socket_path = "/tmp/x.sock"
      nested {
        a = 1
      }
    }
  }
`
	if got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
	var decoded map[string]any
	if err := hcl.Decode(&decoded, "plugins {\n"+got+"}\n"); err != nil {
		t.Fatalf("rendered plugin is not HCL: %v", err)
	}
}

func TestExternalPluginEmptyData(t *testing.T) {
	p := ExternalPlugin{Name: "c", Cmd: writeExecutable(t, "abc", 0o755)}
	got, err := p.hcl("CredentialComposer")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(got, "    plugin_data {\n\n    }\n") || strings.Contains(got, "plugin_args") {
		t.Fatalf("unexpected rendering:\n%s", got)
	}
}

func TestExternalPluginValidate(t *testing.T) {
	exe := writeExecutable(t, "abc", 0o755)
	plain := writeExecutable(t, "abc", 0o644)
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing")
	tests := []struct {
		name   string
		plugin ExternalPlugin
		want   string
	}{
		{"ok", ExternalPlugin{Name: "a_b-1", Cmd: exe}, ""},
		{"empty name", ExternalPlugin{Cmd: exe}, `harness: plugin name "": want letters, digits, '_' or '-'`},
		{"name with space", ExternalPlugin{Name: "a b", Cmd: exe}, `harness: plugin name "a b": want letters, digits, '_' or '-'`},
		{"name with quote", ExternalPlugin{Name: `a"`, Cmd: exe}, `harness: plugin name "a\"": want letters, digits, '_' or '-'`},
		{"no cmd", ExternalPlugin{Name: "a"}, "harness: plugin a: cmd is empty"},
		{"missing cmd", ExternalPlugin{Name: "a", Cmd: missing}, "harness: plugin a: stat " + missing + ": no such file or directory"},
		{"directory", ExternalPlugin{Name: "a", Cmd: dir}, "harness: plugin a: " + dir + " is not an executable file"},
		{"not executable", ExternalPlugin{Name: "a", Cmd: plain}, "harness: plugin a: " + plain + " is not an executable file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.plugin.validate()
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tt.want {
				t.Fatalf("err %q, want %q", got, tt.want)
			}
		})
	}
}

func TestServerConfig(t *testing.T) {
	s := &SPIREServer{
		trustDomain: spiffeid.RequireTrustDomainFromString("example.org"),
		jwtIssuer:   "http://127.0.0.1:9000",
		adminSocket: "/tmp/aid1/server.sock",
		bindPort:    8081,
		dataDir:     "/data",
	}
	got, err := s.config(ServerOptions{
		CacheReloadInterval: 500 * time.Millisecond,
		DefaultJWTSVIDTTL:   2 * time.Minute,
		LogLevel:            "INFO",
		CredentialComposer:  &ExternalPlugin{Name: "agentid", Cmd: writeExecutable(t, "abc", 0o755), Data: `socket = "/s"`},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`  bind_address = "127.0.0.1"` + "\n  bind_port = 8081\n",
		`  socket_path = "/tmp/aid1/server.sock"`,
		`  trust_domain = "example.org"`,
		`  jwt_issuer = "http://127.0.0.1:9000"`,
		`  default_jwt_svid_ttl = "2m0s"`,
		"  ratelimit {\n    signing = false\n  }",
		"  experimental {\n    cache_reload_interval = \"500ms\"\n  }",
		"      database_type = \"sqlite3\"\n      connection_string = \"/data/datastore.sqlite3\"",
		"  KeyManager \"disk\" {\n    plugin_data {\n      keys_path = \"/data/keys.json\"",
		`  CredentialComposer "agentid" {`,
		`    plugin_checksum = "` + abcSHA256 + `"`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("config lacks %q:\n%s", want, got)
		}
	}
	var decoded map[string]any
	if err := hcl.Decode(&decoded, got); err != nil {
		t.Fatalf("server config is not HCL: %v\n%s", err, got)
	}
}

func TestAgentConfig(t *testing.T) {
	srv := &SPIREServer{trustDomain: spiffeid.RequireTrustDomainFromString("example.org"), bindPort: 8081}
	a := &SPIREAgent{workloadSocket: "/tmp/aid2/agent.sock"}
	exe := writeExecutable(t, "abc", 0o755)
	got, err := a.config(AgentOptions{SyncInterval: time.Second, LogLevel: "DEBUG",
		WorkloadAttestor: &ExternalPlugin{Name: "aiagent", Cmd: exe}}, srv, "/data", "/b.pem", "tok")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`  server_port = 8081`,
		`  socket_path = "/tmp/aid2/agent.sock"`,
		`  trust_bundle_path = "/b.pem"`,
		`  join_token = "tok"`,
		"  experimental {\n    sync_interval = \"1s\"\n  }",
		"  WorkloadAttestor \"unix\" {\n    plugin_data {}\n  }\n  WorkloadAttestor \"aiagent\" {",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("config lacks %q:\n%s", want, got)
		}
	}
	var decoded map[string]any
	if err := hcl.Decode(&decoded, got); err != nil {
		t.Fatalf("agent config is not HCL: %v\n%s", err, got)
	}

	_, err = a.config(AgentOptions{WorkloadAttestor: &ExternalPlugin{Name: "unix", Cmd: exe}}, srv, "/data", "/b.pem", "tok")
	if want := `harness: workload attestor name "unix" is the built-in one`; err == nil || err.Error() != want {
		t.Fatalf("err %v, want %q", err, want)
	}
}

func TestEntryProto(t *testing.T) {
	td := spiffeid.RequireTrustDomainFromString("example.org")
	id := spiffeid.RequireFromPath(td, "/w")
	parent := spiffeid.RequireFromPath(td, "/spire/agent/join_token/t")
	tests := []struct {
		name  string
		entry Entry
		want  string
	}{
		{"no id", Entry{ParentID: parent, Selectors: []string{"unix:uid:1"}}, "harness: entry needs a SPIFFE ID and a parent ID"},
		{"no parent", Entry{SPIFFEID: id, Selectors: []string{"unix:uid:1"}}, "harness: entry needs a SPIFFE ID and a parent ID"},
		{"no selector", Entry{SPIFFEID: id, ParentID: parent}, "harness: entry spiffe://example.org/w has no selector"},
		{"selector without type", Entry{SPIFFEID: id, ParentID: parent, Selectors: []string{":x"}}, `harness: selector ":x": want type:value`},
		{"selector without value", Entry{SPIFFEID: id, ParentID: parent, Selectors: []string{"unix:"}}, `harness: selector "unix:": want type:value`},
		{"selector without colon", Entry{SPIFFEID: id, ParentID: parent, Selectors: []string{"unix"}}, `harness: selector "unix": want type:value`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.entry.proto()
			if err == nil || err.Error() != tt.want {
				t.Fatalf("err %v, want %q", err, tt.want)
			}
		})
	}

	pe, err := Entry{
		ID: "e1", SPIFFEID: id, ParentID: parent,
		Selectors:  []string{"unix:uid:1000", "aiagent:name:a:b"},
		JWTSVIDTTL: 90 * time.Second, X509SVIDTTL: time.Hour,
	}.proto()
	if err != nil {
		t.Fatal(err)
	}
	if pe.Id != "e1" || pe.SpiffeId.Path != "/w" || pe.ParentId.Path != "/spire/agent/join_token/t" ||
		pe.SpiffeId.TrustDomain != "example.org" || pe.JwtSvidTtl != 90 || pe.X509SvidTtl != 3600 ||
		len(pe.Selectors) != 2 || pe.Selectors[1].Type != "aiagent" || pe.Selectors[1].Value != "name:a:b" {
		t.Fatalf("entry %v", pe)
	}
}

// FuzzHCLString checks that every string the harness writes into a SPIRE
// config (paths, plugin arguments, names) reads back unchanged.
func FuzzHCLString(f *testing.F) {
	for _, s := range []string{"", "${", "/tmp/aid123/server.sock", `a "quoted" \ path`, "tab\there", "new\nline", "é ü", "${interp}", "\x00", "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var out struct {
			V string `hcl:"v"`
		}
		if err := hcl.Decode(&out, "v = "+hclString(s)+"\n"); err != nil {
			t.Fatalf("%q: %v", s, err)
		}
		if out.V != s {
			t.Fatalf("%q read back as %q", s, out.V)
		}
	})
}
