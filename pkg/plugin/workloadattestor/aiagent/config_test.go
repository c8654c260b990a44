package aiagent

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/hcl"
	"github.com/hashicorp/hcl/hcl/ast"
	"github.com/hashicorp/hcl/hcl/printer"
	configv1 "github.com/spiffe/spire-plugin-sdk/proto/spire/service/common/config/v1"
	"google.golang.org/grpc/codes"
)

const noKeysNote = "no signing_keys configured: manifests are unverified claims of the workload and no signer selector is produced"

// TestConfigure runs each configuration through Validate and Configure over
// gRPC: both must agree, with the exact error text.
func TestConfigure(t *testing.T) {
	keys := newTestKeys(t)
	dir := t.TempDir()
	notPEM := writeFile(t, dir, "not.pem", []byte("hello"))
	privPEM := writeFile(t, dir, "priv.pem", []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"))
	trailing := writeFile(t, dir, "trailing.pem", append(must(os.ReadFile(keys.p256File)), "junk"...))
	huge := writeFile(t, dir, "huge.pem", make([]byte, maxKeyFileSize+1))
	missing := filepath.Join(dir, "missing.pem")
	rsa := filepath.Join("testdata", "rsa.pub.pem")
	p384 := filepath.Join("testdata", "p384.pub.pem")

	cases := []struct {
		name      string
		hcl       string
		wantErr   string // "" for valid
		wantNotes []string
	}{
		{
			name:      "empty: all defaults",
			hcl:       "",
			wantNotes: []string{noKeysNote},
		},
		{
			name: "all keys",
			hcl: `default_manifest_path = "/opt/agent/manifest.json"
max_manifest_size = 1048576
max_exe_size = 10
signing_keys = {
  "release-2025" = "` + keys.ed25519File + `"
  "release.p256" = "` + keys.p256File + `"
}`,
		},
		{
			name:    "unknown key",
			hcl:     `default_manifest_path = "/m.json"` + "\nmanifest_path = \"/x\"\nsigning_key = {}",
			wantErr: "aiagent: unknown configuration keys: manifest_path, signing_key",
		},
		{
			name:    "repeated key",
			hcl:     "max_manifest_size = 10\nmax_manifest_size = 20",
			wantErr: "aiagent: configuration keys given more than once: max_manifest_size",
		},
		{
			name:    "malformed HCL",
			hcl:     `signing_keys = {`,
			wantErr: "aiagent: failed to parse configuration: At 1:18: object expected closing RBRACE got: EOF",
		},
		{
			name:    "wrong type",
			hcl:     `max_manifest_size = "big"`,
			wantErr: `aiagent: failed to decode configuration: strconv.ParseInt: parsing "big": invalid syntax`,
		},
		{
			name:    "relative default path",
			hcl:     `default_manifest_path = "etc/agentid/manifest.json"`,
			wantErr: `aiagent: default_manifest_path: "etc/agentid/manifest.json" is not absolute`,
		},
		{
			name:    "unclean default path",
			hcl:     `default_manifest_path = "/etc/agentid/../manifest.json"`,
			wantErr: `aiagent: default_manifest_path: "/etc/agentid/../manifest.json" is not clean (want "/etc/manifest.json")`,
		},
		{
			name:    "root as default path",
			hcl:     `default_manifest_path = "/"`,
			wantErr: `aiagent: default_manifest_path: "/" names no file`,
		},
		{
			name:    "negative size",
			hcl:     `max_manifest_size = -1`,
			wantErr: "aiagent: max_manifest_size -1: want 1 to 1048576",
		},
		{
			name:    "size over the limit",
			hcl:     `max_manifest_size = 1048577`,
			wantErr: "aiagent: max_manifest_size 1048577: want 1 to 1048576",
		},
		{
			name:    "negative executable size",
			hcl:     `max_exe_size = -1`,
			wantErr: "aiagent: max_exe_size -1: want a positive size",
		},
		{
			name:    "bad key id",
			hcl:     `signing_keys = { "-release" = "` + keys.p256File + `" }`,
			wantErr: `aiagent: invalid signing key: key id "-release": want 1-128 of [A-Za-z0-9._-] starting with a letter or digit`,
		},
		{
			name:    "missing key file",
			hcl:     `signing_keys = { k = "` + missing + `" }`,
			wantErr: `aiagent: invalid signing key "k": open ` + missing + `: no such file or directory`,
		},
		{
			name:    "key file not PEM",
			hcl:     `signing_keys = { k = "` + notPEM + `" }`,
			wantErr: `aiagent: invalid signing key "k": ` + notPEM + `: no PEM block`,
		},
		{
			name:    "private key instead of public key",
			hcl:     `signing_keys = { k = "` + privPEM + `" }`,
			wantErr: `aiagent: invalid signing key "k": ` + privPEM + `: PEM block "PRIVATE KEY", want "PUBLIC KEY"`,
		},
		{
			name:    "data after the PEM block",
			hcl:     `signing_keys = { k = "` + trailing + `" }`,
			wantErr: `aiagent: invalid signing key "k": ` + trailing + `: data after the PEM block`,
		},
		{
			name:    "key file too large",
			hcl:     `signing_keys = { k = "` + huge + `" }`,
			wantErr: `aiagent: invalid signing key "k": file too large: more than 65536 bytes`,
		},
		{
			name:    "RSA key",
			hcl:     `signing_keys = { k = "` + rsa + `" }`,
			wantErr: `aiagent: invalid signing key "k": ` + rsa + `: *rsa.PublicKey, want Ed25519 or ECDSA P-256`,
		},
		{
			name:    "P-384 key",
			hcl:     `signing_keys = { k = "` + p384 + `" }`,
			wantErr: `aiagent: invalid signing key "k": ` + p384 + `: ECDSA key on P-384, want P-256`,
		},
	}
	s := serve(t, nil)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			core := &configv1.CoreConfiguration{TrustDomain: "example.org"}
			vresp, err := s.config.Validate(ctx, &configv1.ValidateRequest{HclConfiguration: tc.hcl, CoreConfiguration: core})
			if err != nil {
				t.Fatalf("Validate: %v", err)
			}
			_, cerr := s.config.Configure(ctx, &configv1.ConfigureRequest{HclConfiguration: tc.hcl, CoreConfiguration: core})
			if tc.wantErr == "" {
				if !vresp.GetValid() || cerr != nil {
					t.Fatalf("Validate valid = %v, Configure error = %v; want valid", vresp.GetValid(), cerr)
				}
				if !slices.Equal(vresp.GetNotes(), tc.wantNotes) {
					t.Errorf("notes = %q, want %q", vresp.GetNotes(), tc.wantNotes)
				}
				return
			}
			if vresp.GetValid() {
				t.Errorf("Validate valid = true, want false")
			}
			if notes := vresp.GetNotes(); len(notes) == 0 || notes[len(notes)-1] != tc.wantErr {
				t.Errorf("Validate notes = %q, want last %q", notes, tc.wantErr)
			}
			assertStatus(t, cerr, codes.InvalidArgument, tc.wantErr)
		})
	}
}

// TestConfigureFailureKeepsPrevious checks that a rejected configuration
// leaves the previous one in force.
func TestConfigureFailureKeepsPrevious(t *testing.T) {
	dir := t.TempDir()
	p := writeFile(t, dir, "agent.json", []byte(goodManifest))
	s := serve(t, nil)
	s.configure(t, `default_manifest_path = "`+p+`"`)
	_, err := s.config.Configure(context.Background(), &configv1.ConfigureRequest{
		HclConfiguration: `default_manifest_path = "relative"`,
	})
	assertStatus(t, err, codes.InvalidArgument, `aiagent: default_manifest_path: "relative" is not absolute`)
	c := startChild(t)
	got := s.attest(t, c.pid)
	if len(got) == 0 || !strings.HasPrefix(got[0], "name:") {
		t.Errorf("selectors = %q, want the manifest's from the previous configuration", got)
	}
}

// TestBuildConfigDefaults checks the runtime values the defaults produce.
func TestBuildConfigDefaults(t *testing.T) {
	c, _, err := buildConfig("")
	if err != nil {
		t.Fatal(err)
	}
	if c.defaultManifest != "etc/agentid/manifest.json" || c.maxManifestSize != DefaultMaxManifestSize ||
		c.maxExeSize != DefaultMaxExeSize || len(c.keys) != 0 {
		t.Errorf("config = %+v", c)
	}
}

// TestREADMESampleConfig decodes the README's sample spire-agent
// configuration the way spire-agent does (plugin_data printed back to HCL
// text) and builds it, so that the documented sample stays valid.
func TestREADMESampleConfig(t *testing.T) {
	readme := string(must(os.ReadFile("README.md")))
	_, rest, ok := strings.Cut(readme, "```hcl\n")
	if !ok {
		t.Fatal("README has no hcl block")
	}
	sample, _, _ := strings.Cut(rest, "```")
	sample = strings.ReplaceAll(sample, "/etc/spire/agentid/release-2025.pub.pem", filepath.Join("testdata", "ed25519.pub.pem"))

	var agent struct {
		Plugins struct {
			WorkloadAttestor map[string]struct {
				PluginData ast.Node `hcl:"plugin_data"`
			} `hcl:"WorkloadAttestor"`
		} `hcl:"plugins"`
	}
	if err := hcl.Decode(&agent, sample); err != nil {
		t.Fatal(err)
	}
	var data bytes.Buffer
	if err := printer.DefaultConfig.Fprint(&data, agent.Plugins.WorkloadAttestor[PluginName].PluginData); err != nil {
		t.Fatal(err)
	}
	c, notes, err := buildConfig(data.String())
	if err != nil {
		t.Fatalf("sample plugin_data %q: %v", data.String(), err)
	}
	if _, ok := c.keys["release-2025"]; !ok || len(notes) != 0 {
		t.Errorf("config = %+v, notes %q", c, notes)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
