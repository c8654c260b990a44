package aiagent

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParseManifest(t *testing.T) {
	// base builds a manifest with one top-level member replaced (or, with
	// value "", removed).
	base := func(key, value string) string {
		members := map[string]string{
			"apiVersion": `"agentid.dev/v1"`,
			"name":       `"gdpr-compliance"`,
			"version":    `"1.4.2"`,
			"model":      `{"provider": "anthropic", "name": "claude-sonnet-4"}`,
			"tools":      `["mcp:github", "crm.read"]`,
			"owner":      `"team-compliance@example.com"`,
		}
		members[key] = value
		var parts []string
		for _, k := range []string{"apiVersion", "name", "version", "model", "tools", "owner"} {
			if v := members[k]; v != "" {
				parts = append(parts, `"`+k+`": `+v)
			}
		}
		return "{" + strings.Join(parts, ", ") + "}"
	}
	long := strings.Repeat("a", 129)
	d1, d2 := strings.Repeat("ab", 32), strings.Repeat("0f", 32)
	// v2 is goodManifest as agentid.dev/v2 with the given binding member.
	v2 := func(binding string) string {
		return strings.Replace(strings.Replace(goodManifest, "agentid.dev/v1", "agentid.dev/v2", 1),
			`"owner"`, `"binding": `+binding+`, "owner"`, 1)
	}

	cases := []struct {
		name    string
		in      string
		want    *Manifest
		wantIs  error
		wantErr string
	}{
		{
			name: "full",
			in:   goodManifest,
			want: &Manifest{
				APIVersion: APIVersionV1, Name: "gdpr-compliance", Version: "1.4.2",
				Model: Model{Provider: "anthropic", Name: "claude-sonnet-4"},
				Tools: []string{"crm.read", "mcp:github"}, Owner: "team-compliance@example.com",
			},
		},
		{
			name: "no tools",
			in:   base("tools", ""),
			want: &Manifest{
				APIVersion: APIVersionV1, Name: "gdpr-compliance", Version: "1.4.2",
				Model: Model{Provider: "anthropic", Name: "claude-sonnet-4"}, Owner: "team-compliance@example.com",
			},
		},
		{
			name: "model name with slashes, version with build metadata",
			in:   base("model", `{"provider":"huggingface","name":"meta-llama/Llama-3.1-8B"}`),
			want: &Manifest{
				APIVersion: APIVersionV1, Name: "gdpr-compliance", Version: "1.4.2",
				Model: Model{Provider: "huggingface", Name: "meta-llama/Llama-3.1-8B"},
				Tools: []string{"crm.read", "mcp:github"}, Owner: "team-compliance@example.com",
			},
		},
		{name: "empty", in: "", wantIs: ErrInvalidManifest, wantErr: "aiagent: invalid manifest: not JSON: EOF"},
		{name: "array", in: "[]", wantIs: ErrInvalidManifest, wantErr: "aiagent: invalid manifest: not a JSON object"},
		{name: "truncated", in: `{"apiVersion": "agentid.dev/v1"`, wantIs: ErrInvalidManifest, wantErr: "aiagent: invalid manifest: not JSON: unexpected EOF"},
		{name: "trailing data", in: goodManifest + "{}", wantIs: ErrInvalidManifest, wantErr: "aiagent: invalid manifest: data after the JSON object"},
		{name: "trailing garbage", in: goodManifest + "x", wantIs: ErrInvalidManifest, wantErr: "aiagent: invalid manifest: data after the JSON object"},
		{name: "no apiVersion", in: base("apiVersion", ""), wantIs: ErrInvalidManifest, wantErr: "aiagent: invalid manifest: apiVersion: missing"},
		{name: "unknown apiVersion", in: base("apiVersion", `"agentid.dev/v9"`), wantIs: ErrUnsupportedAPIVersion, wantErr: `aiagent: unsupported apiVersion: "agentid.dev/v9" (want "agentid.dev/v2" or "agentid.dev/v1")`},
		{name: "later version with new fields", in: `{"apiVersion": "agentid.dev/v3", "skills": []}`, wantIs: ErrUnsupportedAPIVersion, wantErr: `aiagent: unsupported apiVersion: "agentid.dev/v3" (want "agentid.dev/v2" or "agentid.dev/v1")`},
		{name: "v2 with executables and scripts", in: v2(`{"executables": ["` + d1 + `", "` + d2 + `"], "scripts": [{"path": "/app/agent.py", "sha256": "` + d2 + `"}]}`),
			want: &Manifest{
				APIVersion: APIVersionV2, Name: "gdpr-compliance", Version: "1.4.2",
				Model: Model{Provider: "anthropic", Name: "claude-sonnet-4"},
				Tools: []string{"crm.read", "mcp:github"}, Owner: "team-compliance@example.com",
				Binding: &Binding{Executables: []string{d1, d2}, Scripts: []Script{{Path: "/app/agent.py", SHA256: d2}}},
			},
		},
		{name: "v2 without binding", in: strings.Replace(goodManifest, "agentid.dev/v1", "agentid.dev/v2", 1), wantIs: ErrInvalidManifest,
			wantErr: "aiagent: invalid manifest: binding: missing (an agentid.dev/v2 manifest must say what runs)"},
		{name: "v1 with a binding", in: strings.Replace(v2(`{"executables": ["`+d1+`"]}`), "agentid.dev/v2", "agentid.dev/v1", 1), wantIs: ErrInvalidManifest,
			wantErr: `aiagent: invalid manifest: unknown field "binding"`},
		{name: "binding null", in: v2("null"), wantIs: ErrInvalidManifest, wantErr: "aiagent: invalid manifest: binding: not a JSON object"},
		{name: "binding unknown field", in: v2(`{"executables": ["` + d1 + `"], "image": "x"}`), wantIs: ErrInvalidManifest, wantErr: `aiagent: invalid manifest: binding: unknown field "image"`},
		{name: "no executables", in: v2(`{"scripts": []}`), wantIs: ErrInvalidManifest, wantErr: "aiagent: invalid manifest: binding.executables: missing"},
		{name: "empty executables", in: v2(`{"executables": []}`), wantIs: ErrInvalidManifest, wantErr: "aiagent: invalid manifest: binding.executables: 0 digests, want 1-16"},
		{name: "too many executables", in: v2(`{"executables": [` + strings.TrimSuffix(strings.Repeat(`"`+d1+`",`, 17), ",") + `]}`), wantIs: ErrInvalidManifest, wantErr: "aiagent: invalid manifest: binding.executables: 17 digests, want 1-16"},
		{name: "upper-case digest", in: v2(`{"executables": ["` + strings.ToUpper(d1) + `"]}`), wantIs: ErrInvalidManifest, wantErr: `aiagent: invalid manifest: binding.executables[0] "` + strings.ToUpper(d1) + `": want 64 lower-case hex digits (SHA-256)`},
		{name: "short digest", in: v2(`{"executables": ["abc"]}`), wantIs: ErrInvalidManifest, wantErr: `aiagent: invalid manifest: binding.executables[0] "abc": want 64 lower-case hex digits (SHA-256)`},
		{name: "digest twice", in: v2(`{"executables": ["` + d1 + `", "` + d1 + `"]}`), wantIs: ErrInvalidManifest, wantErr: `aiagent: invalid manifest: binding.executables[1] "` + d1 + `": listed twice`},
		{name: "empty scripts", in: v2(`{"executables": ["` + d1 + `"], "scripts": []}`), wantIs: ErrInvalidManifest, wantErr: "aiagent: invalid manifest: binding.scripts: 0 scripts, want 1-16 (or no scripts member)"},
		{name: "relative script", in: v2(`{"executables": ["` + d1 + `"], "scripts": [{"path": "agent.py", "sha256": "` + d1 + `"}]}`), wantIs: ErrInvalidManifest, wantErr: `aiagent: invalid manifest: binding.scripts[0].path "agent.py": want an absolute, clean path of at most 1024 printable ASCII characters`},
		{name: "unclean script", in: v2(`{"executables": ["` + d1 + `"], "scripts": [{"path": "/app/../agent.py", "sha256": "` + d1 + `"}]}`), wantIs: ErrInvalidManifest, wantErr: `aiagent: invalid manifest: binding.scripts[0].path "/app/../agent.py": want an absolute, clean path of at most 1024 printable ASCII characters`},
		{name: "script with space", in: v2(`{"executables": ["` + d1 + `"], "scripts": [{"path": "/app/a b.py", "sha256": "` + d1 + `"}]}`), wantIs: ErrInvalidManifest, wantErr: `aiagent: invalid manifest: binding.scripts[0].path "/app/a b.py": want an absolute, clean path of at most 1024 printable ASCII characters`},
		{name: "script without digest", in: v2(`{"executables": ["` + d1 + `"], "scripts": [{"path": "/app/agent.py"}]}`), wantIs: ErrInvalidManifest, wantErr: "aiagent: invalid manifest: binding.scripts[0].sha256: missing"},
		{name: "script unknown field", in: v2(`{"executables": ["` + d1 + `"], "scripts": [{"path": "/a.py", "sha256": "` + d1 + `", "args": []}]}`), wantIs: ErrInvalidManifest, wantErr: `aiagent: invalid manifest: binding.scripts[0]: unknown field "args"`},
		{name: "script twice", in: v2(`{"executables": ["` + d1 + `"], "scripts": [{"path": "/a.py", "sha256": "` + d1 + `"}, {"path": "/a.py", "sha256": "` + d2 + `"}]}`), wantIs: ErrInvalidManifest, wantErr: `aiagent: invalid manifest: binding.scripts[1].path "/a.py": listed twice`},
		{name: "unknown field", in: strings.Replace(goodManifest, `"owner"`, `"team": "x", "owner"`, 1), wantIs: ErrInvalidManifest, wantErr: `aiagent: invalid manifest: unknown field "team"`},
		{name: "field in other case", in: strings.Replace(goodManifest, `"owner"`, `"Owner"`, 1), wantIs: ErrInvalidManifest, wantErr: `aiagent: invalid manifest: unknown field "Owner"`},
		{name: "repeated field", in: strings.Replace(goodManifest, `"owner"`, `"name": "other", "owner"`, 1), wantIs: ErrInvalidManifest, wantErr: `aiagent: invalid manifest: field "name" repeated`},
		{name: "null name", in: base("name", "null"), wantIs: ErrInvalidManifest, wantErr: "aiagent: invalid manifest: name: null value"},
		{name: "numeric version", in: base("version", "1"), wantIs: ErrInvalidManifest, wantErr: "aiagent: invalid manifest: version: json: cannot unmarshal number into Go value of type string"},
		{name: "empty name", in: base("name", `""`), wantIs: ErrInvalidManifest, wantErr: `aiagent: invalid manifest: name "": want 1-128 of [A-Za-z0-9._-] starting with a letter or digit`},
		{name: "name too long", in: base("name", `"`+long+`"`), wantIs: ErrInvalidManifest, wantErr: `aiagent: invalid manifest: name "` + long + `": want 1-128 of [A-Za-z0-9._-] starting with a letter or digit`},
		{name: "name with colon", in: base("name", `"a:b"`), wantIs: ErrInvalidManifest, wantErr: `aiagent: invalid manifest: name "a:b": want 1-128 of [A-Za-z0-9._-] starting with a letter or digit`},
		{name: "name starting with dot", in: base("name", `".."`), wantIs: ErrInvalidManifest, wantErr: `aiagent: invalid manifest: name "..": want 1-128 of [A-Za-z0-9._-] starting with a letter or digit`},
		{name: "version with space", in: base("version", `"1 2"`), wantIs: ErrInvalidManifest, wantErr: `aiagent: invalid manifest: version "1 2": want 1-64 of [A-Za-z0-9._+-] starting with a letter or digit`},
		{name: "non-ASCII name", in: base("name", `"agent\u00e9"`), wantIs: ErrInvalidManifest, wantErr: `aiagent: invalid manifest: name "agenté": want 1-128 of [A-Za-z0-9._-] starting with a letter or digit`},
		{name: "invalid UTF-8", in: base("name", "\"a\xff\""), wantIs: ErrInvalidManifest, wantErr: "aiagent: invalid manifest: name \"a\ufffd\": want 1-128 of [A-Za-z0-9._-] starting with a letter or digit"},
		{name: "no model", in: base("model", ""), wantIs: ErrInvalidManifest, wantErr: "aiagent: invalid manifest: model: missing"},
		{name: "model not an object", in: base("model", `"claude"`), wantIs: ErrInvalidManifest, wantErr: "aiagent: invalid manifest: model: not a JSON object"},
		{name: "model unknown field", in: base("model", `{"provider":"a","name":"b","temperature":"1"}`), wantIs: ErrInvalidManifest, wantErr: `aiagent: invalid manifest: model: unknown field "temperature"`},
		{name: "model missing provider", in: base("model", `{"name":"b"}`), wantIs: ErrInvalidManifest, wantErr: "aiagent: invalid manifest: model.provider: missing"},
		{name: "provider with slash", in: base("model", `{"provider":"a/b","name":"c"}`), wantIs: ErrInvalidManifest, wantErr: `aiagent: invalid manifest: model.provider "a/b": want 1-64 of [A-Za-z0-9._-] starting with a letter or digit`},
		{name: "tools null", in: base("tools", "null"), wantIs: ErrInvalidManifest, wantErr: "aiagent: invalid manifest: tools: null value"},
		{name: "tools not strings", in: base("tools", "[1]"), wantIs: ErrInvalidManifest, wantErr: "aiagent: invalid manifest: tools: json: cannot unmarshal number into Go value of type string"},
		{name: "duplicate tool", in: base("tools", `["a","b","a"]`), wantIs: ErrInvalidManifest, wantErr: `aiagent: invalid manifest: tool "a": listed twice`},
		{name: "empty tool", in: base("tools", `[""]`), wantIs: ErrInvalidManifest, wantErr: `aiagent: invalid manifest: tool "": want 1-128 of [A-Za-z0-9._:/@+-] starting with a letter or digit`},
		{name: "too many tools", in: base("tools", `["t`+strings.Repeat(`", "t`, MaxTools)+`"]`), wantIs: ErrInvalidManifest, wantErr: "aiagent: invalid manifest: tools: 129 tools, at most 128"},
		{name: "no owner", in: base("owner", ""), wantIs: ErrInvalidManifest, wantErr: "aiagent: invalid manifest: owner: missing"},
		{name: "owner with newline", in: base("owner", `"a\nb"`), wantIs: ErrInvalidManifest, wantErr: `aiagent: invalid manifest: owner "a\nb": want 1-256 printable ASCII characters, not starting or ending with a space`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseManifest([]byte(tc.in))
			if tc.wantIs == nil {
				if err != nil {
					t.Fatalf("ParseManifest: %v", err)
				}
				if !reflect.DeepEqual(got, tc.want) {
					t.Errorf("manifest = %+v, want %+v", got, tc.want)
				}
				return
			}
			if !errors.Is(err, tc.wantIs) || err.Error() != tc.wantErr {
				t.Errorf("error = %v\nwant %q (is %v)", err, tc.wantErr, tc.wantIs)
			}
			if got != nil {
				t.Errorf("manifest = %+v, want nil", got)
			}
		})
	}
}

// FuzzParseManifest checks that ParseManifest never panics and that whatever
// it accepts is canonical: every value fits in a selector (printable ASCII,
// no whitespace in selector values), tools are sorted and unique, and the
// manifest survives a JSON round trip unchanged.
func FuzzParseManifest(f *testing.F) {
	for _, s := range []string{
		goodManifest,
		`{"apiVersion":"agentid.dev/v1","name":"a","version":"1","model":{"provider":"p","name":"m"},"owner":"o"}`,
		`{"apiVersion":"agentid.dev/v1","name":"a","name":"b"}`,
		`{"apiVersion":"agentid.dev/v2"}`,
		`{"apiVersion":"agentid.dev/v2","name":"a","version":"1","model":{"provider":"p","name":"m"},"owner":"o","binding":{"executables":["` + strings.Repeat("ab", 32) + `"]}}`,
		`{"apiVersion":"agentid.dev/v2","name":"a","version":"1","model":{"provider":"p","name":"m"},"owner":"o","binding":{"executables":["` + strings.Repeat("ab", 32) + `"],"scripts":[{"path":"/a.py","sha256":"` + strings.Repeat("cd", 32) + `"}]}}`,
		`{"APIVERSION":"agentid.dev/v1"}`,
		`{"apiVersion":"agentid.dev/v1","tools":null}`,
		`{"apiVersion":"agentid.dev/v1","name":"a\u0000"}`,
		`{"apiVersion":"agentid.dev/v1"} {}`,
		`[`, `"`, `{`, ``, `null`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseManifest(data)
		if err != nil {
			if m != nil {
				t.Fatal("manifest and error")
			}
			if !errors.Is(err, ErrInvalidManifest) && !errors.Is(err, ErrUnsupportedAPIVersion) {
				t.Fatalf("error %v wraps no sentinel", err)
			}
			return
		}
		for _, v := range append([]string{m.Name, m.Version, m.Model.Provider, m.Model.Name}, m.Tools...) {
			if v == "" || strings.ContainsFunc(v, func(r rune) bool { return r <= ' ' || r > '~' }) {
				t.Fatalf("accepted selector value %q", v)
			}
		}
		if (m.APIVersion == APIVersionV2) != (m.Binding != nil) {
			t.Fatalf("%s manifest with binding %+v", m.APIVersion, m.Binding)
		}
		if b := m.Binding; b != nil {
			for _, d := range b.Executables {
				if !validDigest(d) {
					t.Fatalf("accepted executable digest %q", d)
				}
			}
			for _, sc := range b.Scripts {
				if _, err := rootRelative(sc.Path); err != nil || !validDigest(sc.SHA256) || !printableASCII(sc.Path) {
					t.Fatalf("accepted script %+v", sc)
				}
			}
		}
		if strings.Contains(m.Model.Provider, "/") {
			t.Fatalf("accepted provider %q", m.Model.Provider)
		}
		for i := 1; i < len(m.Tools); i++ {
			if m.Tools[i-1] >= m.Tools[i] {
				t.Fatalf("tools not sorted and unique: %q", m.Tools)
			}
		}
		again, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		m2, err := ParseManifest(again)
		if err != nil || !reflect.DeepEqual(m, m2) {
			t.Fatalf("round trip of %q: %+v, %v", again, m2, err)
		}
	})
}
