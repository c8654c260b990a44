package aiagent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	workloadattestorv1 "github.com/spiffe/spire-plugin-sdk/proto/spire/plugin/agent/workloadattestor/v1"
	configv1 "github.com/spiffe/spire-plugin-sdk/proto/spire/service/common/config/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

const goodManifest = `{
  "apiVersion": "agentid.dev/v1",
  "name": "gdpr-compliance",
  "version": "1.4.2",
  "model": {"provider": "anthropic", "name": "claude-sonnet-4"},
  "tools": ["mcp:github", "crm.read"],
  "owner": "team-compliance@example.com"
}
`

// goodSelectors are the manifest selectors of goodManifest, tools sorted.
var goodSelectors = []string{
	"name:gdpr-compliance",
	"version:1.4.2",
	"model:anthropic/claude-sonnet-4",
	"tool:crm.read",
	"tool:mcp:github",
}

// attestCase is one process set-up and the answer it must get.
type attestCase struct {
	name string
	// files to write in the case's directory (name → contents); a nil
	// value makes a FIFO.
	files map[string][]byte
	// symlinks to create in the case's directory (name → target; a target
	// starting with "./" is made relative to the directory).
	symlinks map[string]string
	// env is the child's AGENTID_MANIFEST: "" unset, "=" set empty, a value
	// starting with "./" is made absolute in the case's directory.
	env string
	// hcl is the plugin_data; {dir}, {ed25519} and {p256} are replaced.
	hcl string
	// want is the exact selector list; the tokens "manifest" and "exe"
	// stand for the digests of files[digestOf] and of the child.
	want []string
	// digestOf names the manifest file in files; "" is "manifest.json".
	digestOf string
	// wantLog is a substring of the plugin's log ("" for no warning).
	wantLog string
	// args replace the child's command line after argv[0]; an argument
	// starting with "./" is made absolute in the case's directory.
	args []string
	// extraEnv is added to the child's environment.
	extraEnv []string
}

func TestAttest(t *testing.T) {
	keys := newTestKeys(t)
	manifest := boundManifest(t, nil)
	v1 := []byte(goodManifest)
	tampered := []byte(strings.Replace(string(manifest), "1.4.2", "1.4.3", 1))
	other := strings.Repeat("0", 64)
	elsewhere := boundManifest(t, nil, other)
	exeDigest, err := testExeDigest()
	if err != nil {
		t.Fatal(err)
	}
	several := boundManifest(t, nil, other, exeDigest)
	script := []byte("print('agent')\n")
	scriptSum := sha256.Sum256(script)
	// The child runs in the host's root, so bound scripts are at host
	// paths: agent.py as bound, evil.py beside it, and in changed/ an
	// agent.py whose bytes are not the bound ones.
	scriptDir := t.TempDir()
	agentPy := writeFile(t, scriptDir, "agent.py", script)
	evilPy := writeFile(t, scriptDir, "evil.py", []byte("import evil\n"))
	changedPy := writeFile(t, t.TempDir(), "agent.py", []byte("print('changed')\n"))
	interpreted := boundManifest(t, []Script{{Path: agentPy, SHA256: hex.EncodeToString(scriptSum[:])}})
	changedManifest := boundManifest(t, []Script{{Path: changedPy, SHA256: hex.EncodeToString(scriptSum[:])}})
	signedEd := sign(t, "release-ed25519", keys.ed25519, manifest)
	signedP256 := sign(t, "release-p256", keys.p256, manifest)
	bothKeys := `signing_keys { "release-ed25519" = "{ed25519}" "release-p256" = "{p256}" }`
	withSigner := func(signer string) []string {
		return slices.Concat(goodSelectors, []string{"manifest", "signer:" + signer, "exe"})
	}
	unsigned := slices.Concat(goodSelectors, []string{"manifest", "exe"})

	cases := []attestCase{
		{
			name:  "signed ed25519",
			files: map[string][]byte{"manifest.json": manifest, "manifest.json.sig": signedEd},
			env:   "./manifest.json", hcl: bothKeys,
			want: withSigner("release-ed25519"),
		},
		{
			name:  "signed p256",
			files: map[string][]byte{"manifest.json": manifest, "manifest.json.sig": signedP256},
			env:   "./manifest.json", hcl: bothKeys,
			want: withSigner("release-p256"),
		},
		{
			name:  "signed v1 manifest earns no signer",
			files: map[string][]byte{"manifest.json": v1, "manifest.json.sig": sign(t, "release-ed25519", keys.ed25519, v1)},
			env:   "./manifest.json", hcl: bothKeys,
			want:    unsigned,
			wantLog: `Agent manifest is agentid.dev/v1, which binds no code; no signer selector (sign an agentid.dev/v2 manifest)`,
		},
		{
			name:  "unsigned v1 manifest",
			files: map[string][]byte{"manifest.json": v1},
			env:   "./manifest.json", hcl: bothKeys,
			want: unsigned,
		},
		{
			name:  "signed manifest copied beside another executable",
			files: map[string][]byte{"manifest.json": elsewhere, "manifest.json.sig": sign(t, "release-ed25519", keys.ed25519, elsewhere)},
			env:   "./manifest.json", hcl: bothKeys,
			wantLog: `executable sha256 ` + exeDigest + ` is not one the manifest binds`,
		},
		{
			name:  "unsigned manifest of another executable",
			files: map[string][]byte{"manifest.json": elsewhere},
			env:   "./manifest.json", hcl: bothKeys,
			wantLog: `Process does not run what its agent manifest binds; no selectors`,
		},
		{
			name:  "one of several bound executables",
			files: map[string][]byte{"manifest.json": several, "manifest.json.sig": sign(t, "release-p256", keys.p256, several)},
			env:   "./manifest.json", hcl: bothKeys,
			want: withSigner("release-p256"),
		},
		{
			name:  "bound executable with the dynamic loader told to preload",
			files: map[string][]byte{"manifest.json": manifest, "manifest.json.sig": signedEd},
			env:   "./manifest.json", hcl: bothKeys,
			extraEnv: []string{"LD_PRELOAD=/tmp/evil.so"},
			wantLog:  `environment sets LD_PRELOAD, which can make the bound code run other code`,
		},
		{
			name:  "interpreter variables do not matter to a compiled agent",
			files: map[string][]byte{"manifest.json": manifest, "manifest.json.sig": signedEd},
			env:   "./manifest.json", hcl: bothKeys,
			extraEnv: []string{"PYTHONPATH=/tmp/evil"},
			want:     withSigner("release-ed25519"),
		},
		{
			name:  "bound executable over max_exe_size",
			files: map[string][]byte{"manifest.json": manifest, "manifest.json.sig": signedEd},
			env:   "./manifest.json", hcl: bothKeys + "\nmax_exe_size = 1000",
			wantLog: `executable not hashed (larger than max_exe_size)`,
		},
		{
			name:  "interpreter running the bound script",
			files: map[string][]byte{"manifest.json": interpreted, "manifest.json.sig": sign(t, "release-ed25519", keys.ed25519, interpreted)},
			env:   "./manifest.json", hcl: bothKeys,
			args: []string{agentPy, "--serve"},
			want: withSigner("release-ed25519"),
		},
		{
			name:  "interpreter with argument-less flags before the bound script",
			files: map[string][]byte{"manifest.json": interpreted, "manifest.json.sig": sign(t, "release-ed25519", keys.ed25519, interpreted)},
			env:   "./manifest.json", hcl: bothKeys,
			args: []string{"-Iu", agentPy},
			want: withSigner("release-ed25519"),
		},
		{
			name:  "interpreter running another script",
			files: map[string][]byte{"manifest.json": interpreted, "manifest.json.sig": sign(t, "release-ed25519", keys.ed25519, interpreted)},
			env:   "./manifest.json", hcl: bothKeys,
			args:    []string{evilPy},
			wantLog: `command line runs \"` + evilPy + `\", not a script the manifest binds`,
		},
		{
			name:  "bound script behind an option that takes an argument",
			files: map[string][]byte{"manifest.json": interpreted, "manifest.json.sig": sign(t, "release-ed25519", keys.ed25519, interpreted)},
			env:   "./manifest.json", hcl: bothKeys,
			args:    []string{"-W", agentPy, evilPy},
			wantLog: `command line names no script`,
		},
		{
			name:  "interpreter with a command instead of a script",
			files: map[string][]byte{"manifest.json": interpreted, "manifest.json.sig": sign(t, "release-ed25519", keys.ed25519, interpreted)},
			env:   "./manifest.json", hcl: bothKeys,
			args:    []string{"-c", "import evil", agentPy},
			wantLog: `command line names no script`,
		},
		{
			name:  "bound script path with other bytes",
			files: map[string][]byte{"manifest.json": changedManifest, "manifest.json.sig": sign(t, "release-ed25519", keys.ed25519, changedManifest)},
			env:   "./manifest.json", hcl: bothKeys,
			args:    []string{changedPy},
			wantLog: `script ` + changedPy + ` has sha256 ` + sha256Hex([]byte("print('changed')\n")) + `, not the bound one`,
		},
		{
			name:  "bound script with the interpreter's path changed",
			files: map[string][]byte{"manifest.json": interpreted, "manifest.json.sig": sign(t, "release-ed25519", keys.ed25519, interpreted)},
			env:   "./manifest.json", hcl: bothKeys,
			args:     []string{agentPy},
			extraEnv: []string{"PYTHONPATH=/tmp/evil"},
			wantLog:  `environment sets PYTHONPATH`,
		},
		{
			name:  "bound script with harmless interpreter settings",
			files: map[string][]byte{"manifest.json": interpreted, "manifest.json.sig": sign(t, "release-ed25519", keys.ed25519, interpreted)},
			env:   "./manifest.json", hcl: bothKeys,
			args:     []string{agentPy},
			extraEnv: []string{"PYTHONUNBUFFERED=1", "PYTHONDONTWRITEBYTECODE=1"},
			want:     withSigner("release-ed25519"),
		},
		{
			name:  "interpreter without a script",
			files: map[string][]byte{"manifest.json": interpreted, "manifest.json.sig": sign(t, "release-ed25519", keys.ed25519, interpreted)},
			env:   "./manifest.json", hcl: bothKeys,
			args:    []string{},
			wantLog: `command line names no script`,
		},
		{
			name:  "unsigned with keys configured",
			files: map[string][]byte{"manifest.json": manifest},
			env:   "./manifest.json", hcl: bothKeys,
			want: unsigned,
		},
		{
			name:  "signed but no keys configured",
			files: map[string][]byte{"manifest.json": manifest, "manifest.json.sig": signedEd},
			env:   "./manifest.json",
			want:  unsigned,
		},
		{
			name:  "tampered manifest",
			files: map[string][]byte{"manifest.json": tampered, "manifest.json.sig": signedEd},
			env:   "./manifest.json", hcl: bothKeys,
			want: []string{
				"name:gdpr-compliance", "version:1.4.3", "model:anthropic/claude-sonnet-4",
				"tool:crm.read", "tool:mcp:github", "manifest", "exe",
			},
			wantLog: `aiagent: signature does not verify: key \"release-ed25519\"`,
		},
		{
			name:  "wrong key id",
			files: map[string][]byte{"manifest.json": manifest, "manifest.json.sig": sign(t, "release-2024", keys.ed25519, manifest)},
			env:   "./manifest.json", hcl: bothKeys,
			want:    unsigned,
			wantLog: `aiagent: unknown signing key id: \"release-2024\"`,
		},
		{
			name:  "signed by an unconfigured key under a configured id",
			files: map[string][]byte{"manifest.json": manifest, "manifest.json.sig": sign(t, "release-p256", keys.p256Other, manifest)},
			env:   "./manifest.json", hcl: bothKeys,
			want:    unsigned,
			wantLog: `aiagent: signature does not verify: key \"release-p256\"`,
		},
		{
			name:  "ed25519 signature under the p256 key id",
			files: map[string][]byte{"manifest.json": manifest, "manifest.json.sig": sign(t, "release-p256", keys.ed25519, manifest)},
			env:   "./manifest.json", hcl: bothKeys,
			want:    unsigned,
			wantLog: `aiagent: signature does not verify: key \"release-p256\"`,
		},
		{
			name:  "malformed signature file",
			files: map[string][]byte{"manifest.json": manifest, "manifest.json.sig": []byte(`{"apiVersion":"agentid.dev/v1","keyId":"release-p256","signature":"not base64!"}`)},
			env:   "./manifest.json", hcl: bothKeys,
			want:    unsigned,
			wantLog: `aiagent: invalid signature file: signature: not standard base64 with padding`,
		},
		{
			name:  "oversized signature file",
			files: map[string][]byte{"manifest.json": manifest, "manifest.json.sig": make([]byte, maxSignatureFileSize+1)},
			env:   "./manifest.json", hcl: bothKeys,
			want:    unsigned,
			wantLog: `file too large: 4097 bytes, more than 4096`,
		},
		{
			name:    "oversized manifest",
			files:   map[string][]byte{"manifest.json": manifest},
			env:     "./manifest.json",
			hcl:     fmt.Sprintf("max_manifest_size = %d", len(manifest)-1),
			wantLog: fmt.Sprintf(`file too large: %d bytes, more than %d`, len(manifest), len(manifest)-1),
		},
		{
			name:    "executable over max_exe_size",
			files:   map[string][]byte{"manifest.json": v1},
			env:     "./manifest.json",
			hcl:     "max_exe_size = 1000",
			want:    slices.Concat(goodSelectors, []string{"manifest"}),
			wantLog: `Not hashing the process executable; no exe-sha256 selector`,
		},
		{
			name:  "manifest exactly at the size cap",
			files: map[string][]byte{"manifest.json": manifest},
			env:   "./manifest.json",
			hcl:   fmt.Sprintf("max_manifest_size = %d", len(manifest)),
			want:  unsigned,
		},
		{
			name: "missing manifest",
			env:  "./manifest.json",
		},
		{
			name:  "path through a regular file",
			files: map[string][]byte{"manifest.json": manifest},
			env:   "./manifest.json/manifest.json",
		},
		{
			name:  "default path when the environment names none",
			files: map[string][]byte{"agent.json": manifest},
			hcl:   `default_manifest_path = "{dir}/agent.json"`,
			want:  unsigned, digestOf: "agent.json",
		},
		{
			name:  "default path when the environment variable is empty",
			files: map[string][]byte{"agent.json": manifest},
			env:   "=",
			hcl:   `default_manifest_path = "{dir}/agent.json"`,
			want:  unsigned, digestOf: "agent.json",
		},
		{
			name:  "environment wins over the default path",
			files: map[string][]byte{"agent.json": []byte("not json"), "manifest.json": manifest},
			env:   "./manifest.json",
			hcl:   `default_manifest_path = "{dir}/agent.json"`,
			want:  unsigned,
		},
		{
			name:  "no manifest at the default path",
			files: map[string][]byte{"manifest.json": manifest},
			hcl:   `default_manifest_path = "{dir}/agent.json"`,
		},
		{
			name:    "malformed JSON",
			files:   map[string][]byte{"manifest.json": []byte(`{"apiVersion": "agentid.dev/v1",`)},
			env:     "./manifest.json",
			wantLog: `aiagent: invalid manifest: not JSON: unexpected EOF`,
		},
		{
			name:    "unknown apiVersion",
			files:   map[string][]byte{"manifest.json": []byte(strings.Replace(goodManifest, "agentid.dev/v1", "agentid.dev/v9", 1))},
			env:     "./manifest.json",
			wantLog: `aiagent: unsupported apiVersion: \"agentid.dev/v9\" (want \"agentid.dev/v2\" or \"agentid.dev/v1\")`,
		},
		{
			name:    "relative path in the environment",
			files:   map[string][]byte{"manifest.json": manifest},
			env:     "manifest.json",
			wantLog: `AGENTID_MANIFEST \"manifest.json\" is not absolute`,
		},
		{
			name:    "unclean path in the environment",
			files:   map[string][]byte{"manifest.json": manifest},
			env:     "./x/../manifest.json",
			wantLog: `is not clean`,
		},
		{
			name:    "FIFO at the manifest path does not block",
			files:   map[string][]byte{"manifest.json": nil},
			env:     "./manifest.json",
			wantLog: `is not a regular file (p---------)`,
		},
		{
			name:     "symlink to a FIFO is not opened",
			files:    map[string][]byte{"fifo": nil},
			symlinks: map[string]string{"manifest.json": "fifo"},
			env:      "./manifest.json",
			wantLog:  `is not a regular file (p---------)`,
		},
		{
			name:    "character device at the manifest path",
			env:     "/dev/null",
			wantLog: `dev/null is not a regular file (Dc---------)`,
		},
		{
			name:    "directory at the manifest path",
			files:   map[string][]byte{"manifest.json/x": manifest},
			env:     "./manifest.json",
			wantLog: `is not a regular file (d---------)`,
		},
		{
			name:    "kernel pseudo file system is refused",
			env:     "/proc/self/environ",
			wantLog: `proc/self/environ is on proc, not a real file system`,
		},
		{
			name:     "relative symlink inside the root is followed",
			files:    map[string][]byte{"..data/manifest.json": manifest},
			symlinks: map[string]string{"manifest.json": "..data/manifest.json"},
			env:      "./manifest.json",
			want:     unsigned, digestOf: "..data/manifest.json",
		},
		{
			name:     "chain of relative symlinks is followed",
			files:    map[string][]byte{"..data/manifest.json": manifest},
			symlinks: map[string]string{"manifest.json": "link", "link": "..data/manifest.json"},
			env:      "./manifest.json",
			want:     unsigned, digestOf: "..data/manifest.json",
		},
		{
			name:     "symlink loop",
			symlinks: map[string]string{"manifest.json": "loop", "loop": "manifest.json"},
			env:      "./manifest.json",
			wantLog:  `aiagent: too many levels of symbolic links`,
		},
		{
			name:     "absolute symlink is refused",
			files:    map[string][]byte{"real.json": manifest},
			symlinks: map[string]string{"manifest.json": "./real.json"},
			env:      "./manifest.json",
			wantLog:  `Ignoring unreadable agent manifest`,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			runAttestCase(t, keys, tc)
		})
	}
}

func runAttestCase(t *testing.T, keys *testKeys, tc attestCase) {
	dir := t.TempDir()
	for name, data := range tc.files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if data == nil {
			if err := syscall.Mkfifo(p, 0o600); err != nil {
				t.Fatal(err)
			}
			continue
		}
		writeFile(t, filepath.Dir(p), filepath.Base(p), data)
	}
	for name, target := range tc.symlinks {
		if rest, ok := strings.CutPrefix(target, "./"); ok {
			target = filepath.Join(dir, rest)
		}
		if err := os.Symlink(target, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	var env []string
	switch {
	case tc.env == "":
	case tc.env == "=":
		env = []string{ManifestEnv + "="}
	case strings.HasPrefix(tc.env, "./"):
		env = []string{ManifestEnv + "=" + dir + tc.env[1:]}
	default:
		env = []string{ManifestEnv + "=" + tc.env}
	}
	hcl := strings.NewReplacer("{dir}", dir, "{ed25519}", keys.ed25519File, "{p256}", keys.p256File).Replace(tc.hcl)

	s := serve(t, nil)
	s.configure(t, hcl)
	env = append(env, tc.extraEnv...)
	c := startChild(t, env...)
	if tc.args != nil {
		args := make([]string, len(tc.args))
		for i, a := range tc.args {
			if rest, ok := strings.CutPrefix(a, "./"); ok {
				a = filepath.Join(dir, rest)
			}
			args[i] = a
		}
		c.stop(t)
		c = startChildArgs(t, args, env...)
	}
	got := s.attest(t, c.pid)

	want := make([]string, len(tc.want))
	for i, w := range tc.want {
		switch w {
		case "manifest":
			name := tc.digestOf
			if name == "" {
				name = "manifest.json"
			}
			w = manifestSelector(tc.files[name])
		case "exe":
			w = exeSelector(t)
		}
		want[i] = w
	}
	if !slices.Equal(got, want) {
		t.Errorf("selectors:\n got %q\nwant %q", got, want)
	}
	logs := s.log.String()
	switch {
	case tc.wantLog == "" && strings.Contains(logs, `"@level":"warn"`):
		t.Errorf("unexpected warning in log:\n%s", logs)
	case tc.wantLog != "" && !strings.Contains(logs, tc.wantLog):
		t.Errorf("log does not contain %q:\n%s", tc.wantLog, logs)
	}
}

// TestAttestDoesNotOpenSpecialFiles plants a FIFO at the manifest path with
// a writer blocked in open(2): a writer's open returns as soon as any reader
// opens the FIFO, so it returning is proof that the plugin opened the file,
// which for a device can have side effects (/dev/watchdog arms on open).
// The plugin must look at the path without opening it.
//
// The check for "the writer is still blocked" waits a bounded 100 ms after
// Attest returned; with a plugin that opens the FIFO the writer is released
// during Attest, so the wait can only make the test pass wrongly under
// extreme load, never fail wrongly.
func TestAttestDoesNotOpenSpecialFiles(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "manifest.json")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	opened := make(chan *os.File, 1)
	go func() {
		w, err := os.OpenFile(fifo, os.O_WRONLY, 0) // blocks until a reader opens
		if err != nil {
			t.Error(err)
		}
		opened <- w
	}()
	t.Cleanup(func() {
		// Release the writer and close both ends.
		r, err := os.OpenFile(fifo, os.O_RDONLY|syscall.O_NONBLOCK, 0)
		if err != nil {
			t.Fatal(err)
		}
		if w := <-opened; w != nil {
			w.Close()
		}
		r.Close()
	})

	s := serve(t, nil)
	s.configure(t, "")
	c := startChild(t, ManifestEnv+"="+fifo)
	if got := s.attest(t, c.pid); len(got) != 0 {
		t.Errorf("selectors = %q, want none", got)
	}
	if !strings.Contains(s.log.String(), "is not a regular file (p---------)") {
		t.Errorf("log does not explain the refusal:\n%s", s.log.String())
	}
	select {
	case w := <-opened:
		opened <- w // for the cleanup
		t.Error("the plugin opened the FIFO: the blocked writer was released")
	case <-time.After(100 * time.Millisecond):
	}
}

// TestAttestHonoursContext holds an attestation in the middle (as a stuck
// read would) and ends the caller's context: Attest must return at once
// with the context's error, not wait for the work.
func TestAttestHonoursContext(t *testing.T) {
	p := writeFile(t, t.TempDir(), "manifest.json", []byte(goodManifest))
	release := make(chan struct{})
	held := make(chan struct{})
	plugin := New()
	plugin.hooks.beforeRecheck = func(int32) {
		close(held)
		<-release
	}
	defer close(release)
	if _, err := plugin.Configure(context.Background(), &configv1.ConfigureRequest{}); err != nil {
		t.Fatal(err)
	}
	c := startChild(t, ManifestEnv+"="+p)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-held
		cancel()
	}()
	_, err := plugin.Attest(ctx, &workloadattestorv1.AttestRequest{Pid: c.pid})
	assertStatus(t, err, codes.Canceled, "context canceled")
}

// TestSetLoggerWhileAttesting replaces the logger while attestations run
// (run with -race): SetLogger must take the lock Attest reads under.
func TestSetLoggerWhileAttesting(t *testing.T) {
	plugin := New()
	if _, err := plugin.Configure(context.Background(), &configv1.ConfigureRequest{}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for range 20 {
			plugin.SetLogger(hclog.NewNullLogger())
		}
	})
	for range 20 {
		if _, err := plugin.Attest(context.Background(), &workloadattestorv1.AttestRequest{Pid: int32(os.Getpid())}); err != nil {
			t.Error(err)
		}
	}
	wg.Wait()
}

// TestAttestProcessGoneMidAttestation ends the process between the two
// start time reads: the plugin must answer no selectors, not an error and
// not the selectors it read before.
func TestAttestProcessGoneMidAttestation(t *testing.T) {
	dir := t.TempDir()
	p := writeFile(t, dir, "manifest.json", []byte(goodManifest))
	var c *child
	var hookRan bool
	s := serve(t, func(p *Plugin) {
		p.hooks.beforeRecheck = func(pid int32) {
			if pid == c.pid {
				hookRan = true
				c.stop(t)
			}
		}
	})
	s.configure(t, "")
	c = startChild(t, ManifestEnv+"="+p)
	got := s.attest(t, c.pid)
	if !hookRan {
		t.Fatal("hook did not run")
	}
	if len(got) != 0 {
		t.Errorf("selectors = %q, want none", got)
	}
	if !strings.Contains(s.log.String(), "Process exited or was replaced during attestation") {
		t.Errorf("log does not record the exit:\n%s", s.log.String())
	}
}

// TestAttestSameProcessTwice checks that a second attestation (warm digest
// cache) answers the same as the first.
func TestAttestSameProcessTwice(t *testing.T) {
	dir := t.TempDir()
	p := writeFile(t, dir, "manifest.json", []byte(goodManifest))
	s := serve(t, nil)
	s.configure(t, "")
	c := startChild(t, ManifestEnv+"="+p)
	first := s.attest(t, c.pid)
	second := s.attest(t, c.pid)
	want := slices.Concat(goodSelectors, []string{manifestSelector([]byte(goodManifest)), exeSelector(t)})
	if !slices.Equal(first, want) || !slices.Equal(second, want) {
		t.Errorf("selectors:\n first %q\nsecond %q\n  want %q", first, second, want)
	}
}

func TestAttestErrors(t *testing.T) {
	t.Run("not configured", func(t *testing.T) {
		s := serve(t, nil)
		_, err := s.wa.Attest(context.Background(), &workloadattestorv1.AttestRequest{Pid: int32(os.Getpid())})
		assertStatus(t, err, codes.FailedPrecondition, "aiagent: not configured")
	})
	for _, pid := range []int32{0, -1} {
		t.Run(fmt.Sprintf("pid %d", pid), func(t *testing.T) {
			s := serve(t, nil)
			s.configure(t, "")
			_, err := s.wa.Attest(context.Background(), &workloadattestorv1.AttestRequest{Pid: pid})
			assertStatus(t, err, codes.InvalidArgument, fmt.Sprintf("aiagent: invalid pid %d", pid))
		})
	}
	t.Run("no such process", func(t *testing.T) {
		s := serve(t, nil)
		s.configure(t, "")
		c := startChild(t)
		c.stop(t)
		if got := s.attest(t, c.pid); len(got) != 0 {
			t.Errorf("selectors = %q, want none", got)
		}
	})
}

func assertStatus(tb testing.TB, err error, code codes.Code, msg string) {
	tb.Helper()
	st := status.Convert(err)
	if err == nil || st.Code() != code || st.Message() != msg {
		tb.Errorf("error = %v, want %s %q", err, code, msg)
	}
}
