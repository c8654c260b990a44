package aiagent

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/spiffe/spire-plugin-sdk/pluginsdk"
	"github.com/spiffe/spire-plugin-sdk/plugintest"
	workloadattestorv1 "github.com/spiffe/spire-plugin-sdk/proto/spire/plugin/agent/workloadattestor/v1"
	configv1 "github.com/spiffe/spire-plugin-sdk/proto/spire/service/common/config/v1"
)

// childEnv marks a re-executed test binary as a stand-in agent process: it
// says it is ready on stdout, then blocks until its stdin is closed and
// exits. Closing stdin (or the test process dying) ends it, so no child
// outlives the test.
const childEnv = "AIAGENT_TEST_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		_, _ = os.Stdout.WriteString("ready\n")
		_, _ = io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// child is a running stand-in agent process.
type child struct {
	pid   int32
	stdin io.WriteCloser
	cmd   *exec.Cmd
	once  sync.Once
}

// stop ends the child and reaps it; after stop its pid no longer exists
// (until the kernel reuses it).
func (c *child) stop(tb testing.TB) {
	tb.Helper()
	c.once.Do(func() {
		_ = c.stdin.Close()
		if err := c.cmd.Wait(); err != nil {
			tb.Errorf("child %d: %v", c.pid, err)
		}
	})
}

// startChild re-executes the test binary with env added to a minimal
// environment, and waits until the child says it is ready. exec.Cmd.Start
// alone is not enough: the parent resumes while the kernel is still in
// execve, before it has laid out the new environment, and
// /proc/<pid>/environ can then read empty. (A real workload has connected to
// the Workload API long after its exec, so the plugin does not meet this.)
func startChild(tb testing.TB, env ...string) *child {
	tb.Helper()
	return startChildArgs(tb, []string{"-test.run=^$"}, env...)
}

// startChildArgs is startChild with the child's arguments (its command
// line after argv[0]); the child ignores them (TestMain exits first).
func startChildArgs(tb testing.TB, args []string, env ...string) *child {
	tb.Helper()
	exe, err := os.Executable()
	if err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command(exe, args...)
	// A -race binary sleeps a second at exit unless told not to.
	cmd.Env = append([]string{childEnv + "=1", "PATH=/usr/bin:/bin", "GORACE=atexit_sleep_ms=0"}, env...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	c := &child{pid: int32(cmd.Process.Pid), stdin: stdin, cmd: cmd}
	tb.Cleanup(func() { c.stop(tb) })
	ready := make([]byte, len("ready\n"))
	if _, err := io.ReadFull(stdout, ready); err != nil || string(ready) != "ready\n" {
		tb.Fatalf("child %d not ready: %q, %v", c.pid, ready, err)
	}
	return c
}

var testExeDigest = sync.OnceValues(func() (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", err
	}
	data, err := os.ReadFile(exe)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:]), nil
})

// boundManifest is goodManifest as an agentid.dev/v2 manifest binding the
// given executable digests (the test binary's when none) and scripts.
func boundManifest(tb testing.TB, scripts []Script, executables ...string) []byte {
	tb.Helper()
	if len(executables) == 0 {
		d, err := testExeDigest()
		if err != nil {
			tb.Fatal(err)
		}
		executables = []string{d}
	}
	m, err := ParseManifest([]byte(goodManifest))
	if err != nil {
		tb.Fatal(err)
	}
	m.APIVersion = APIVersionV2
	m.Binding = &Binding{Executables: executables, Scripts: scripts}
	b, err := json.Marshal(m)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// exeSelector is the exe-sha256 selector of every child: the test binary.
func exeSelector(tb testing.TB) string {
	tb.Helper()
	d, err := testExeDigest()
	if err != nil {
		tb.Fatal(err)
	}
	return "exe-sha256:" + d
}

func manifestSelector(data []byte) string {
	sum := sha256.Sum256(data)
	return "manifest-sha256:" + hex.EncodeToString(sum[:])
}

// writeFile writes data to dir/name and returns the path.
func writeFile(tb testing.TB, dir, name string, data []byte) string {
	tb.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		tb.Fatal(err)
	}
	return p
}

// testKeys are one Ed25519 and one P-256 signing key, with their public keys
// written as PEM files.
type testKeys struct {
	ed25519, p256           crypto.Signer
	ed25519File, p256File   string
	ed25519Other, p256Other crypto.Signer // same types, not configured
}

func newTestKeys(tb testing.TB) *testKeys {
	tb.Helper()
	dir := tb.TempDir()
	k := &testKeys{}
	var err error
	_, edPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	k.ed25519 = edPriv
	_, otherEd, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	k.ed25519Other = otherEd
	ecPriv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	k.p256 = ecPriv
	otherEC, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	k.p256Other = otherEC
	k.ed25519File = writePublicKey(tb, dir, "ed25519.pub.pem", edPriv.Public())
	k.p256File = writePublicKey(tb, dir, "p256.pub.pem", ecPriv.Public())
	return k
}

func writePublicKey(tb testing.TB, dir, name string, pub crypto.PublicKey) string {
	tb.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		tb.Fatal(err)
	}
	return writeFile(tb, dir, name, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

func sign(tb testing.TB, keyID string, key crypto.Signer, manifest []byte) []byte {
	tb.Helper()
	sig, err := SignManifest(keyID, key, manifest)
	if err != nil {
		tb.Fatal(err)
	}
	return sig
}

// syncBuffer is a log sink safe for the plugin's goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// served is a plugin behind real go-plugin gRPC, with clients and its log.
type served struct {
	plugin *Plugin
	wa     *workloadattestorv1.WorkloadAttestorPluginClient
	config *configv1.ConfigServiceClient
	log    *syncBuffer
}

// serve runs a new plugin over gRPC for the test's lifetime. setup, when not
// nil, runs before the plugin is served (to install hooks).
func serve(t *testing.T, setup func(*Plugin)) *served {
	t.Helper()
	s := &served{
		plugin: New(),
		wa:     new(workloadattestorv1.WorkloadAttestorPluginClient),
		config: new(configv1.ConfigServiceClient),
		log:    new(syncBuffer),
	}
	if setup != nil {
		setup(s.plugin)
	}
	plugintest.ServeInBackground(t, plugintest.Config{
		PluginServer:   workloadattestorv1.WorkloadAttestorPluginServer(s.plugin),
		PluginClient:   s.wa,
		ServiceServers: []pluginsdk.ServiceServer{configv1.ConfigServiceServer(s.plugin)},
		ServiceClients: []pluginsdk.ServiceClient{s.config},
		Logger: hclog.New(&hclog.LoggerOptions{
			Output:     s.log,
			Level:      hclog.Debug,
			JSONFormat: true,
		}),
	})
	return s
}

// configure applies hclText and fails the test on error.
func (s *served) configure(tb testing.TB, hclText string) {
	tb.Helper()
	_, err := s.config.Configure(context.Background(), &configv1.ConfigureRequest{
		HclConfiguration:  hclText,
		CoreConfiguration: &configv1.CoreConfiguration{TrustDomain: "example.org"},
	})
	if err != nil {
		tb.Fatalf("Configure: %v", err)
	}
}

// attest calls Attest over gRPC and returns the selectors.
func (s *served) attest(tb testing.TB, pid int32) []string {
	tb.Helper()
	resp, err := s.wa.Attest(context.Background(), &workloadattestorv1.AttestRequest{Pid: pid})
	if err != nil {
		tb.Fatalf("Attest(%d): %v", pid, err)
	}
	return resp.GetSelectorValues()
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
