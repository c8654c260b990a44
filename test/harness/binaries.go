package harness

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// Bins holds the paths of the outside programs the harness runs.
type Bins struct {
	// SPIREServer, SPIREAgent and OIDCDiscovery are SPIRE v1.13.3's
	// spire-server, spire-agent and oidc-discovery-provider.
	SPIREServer   string
	SPIREAgent    string
	OIDCDiscovery string
	// Hydra is Ory Hydra v2.3.0 built with the sqlite tag (DSN=memory).
	Hydra string
}

// Tool names accepted by test/tools/build.sh.
const (
	toolSPIRE = "spire"
	toolHydra = "hydra"
)

var (
	buildMu   sync.Mutex
	buildDone = map[string]error{}
)

// Binaries returns the paths of SPIRE's and Hydra's programs, building them
// through test/tools/build.sh when they are missing or stale. The script is
// idempotent and holds a lock per tool, so parallel test packages build
// once; within one test binary it runs once per tool. A first build takes
// minutes (SPIRE about 6 on 2 cores): run `test/tools/build.sh` (or `make
// tools`) before `go test` to keep it out of the test's time.
func Binaries(t testing.TB) Bins {
	t.Helper()
	return Bins{
		SPIREServer:   tool(t, toolSPIRE, "spire-server"),
		SPIREAgent:    tool(t, toolSPIRE, "spire-agent"),
		OIDCDiscovery: tool(t, toolSPIRE, "oidc-discovery-provider"),
		Hydra:         tool(t, toolHydra, "hydra"),
	}
}

// tool ensures the tool group is built and returns one program's path.
func tool(t testing.TB, group, name string) string {
	t.Helper()
	root := repoRoot(t)
	if err := ensureBuilt(t, root, group); err != nil {
		t.Fatalf("harness: %v", err)
	}
	dir := filepath.Join(root, "bin", group)
	if v := os.Getenv("AGENTID_TOOLS_BIN"); v != "" {
		dir = filepath.Join(v, group)
	}
	path := filepath.Join(dir, name)
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("harness: %s missing after build: %v", name, err)
	}
	return path
}

func ensureBuilt(t testing.TB, root, group string) error {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if err, ok := buildDone[group]; ok {
		return err
	}
	start := time.Now()
	cmd := exec.Command(filepath.Join(root, "test", "tools", "build.sh"), group)
	cmd.Dir = root
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	err := cmd.Run()
	if err != nil {
		err = fmt.Errorf("build %s: %w\n%s", group, err, out.Bytes())
	} else {
		t.Logf("harness: %s tools ready in %s: %s", group, time.Since(start).Round(time.Millisecond), bytes.TrimSpace(out.Bytes()))
	}
	buildDone[group] = err
	return err
}

var (
	rootOnce sync.Once
	rootDir  string
	rootErr  error
)

// repoRoot finds the repository by walking up from the working directory
// (go test runs in the package directory) to the folder holding
// test/tools/build.sh.
func repoRoot(t testing.TB) string {
	t.Helper()
	rootOnce.Do(func() {
		dir, err := os.Getwd()
		if err != nil {
			rootErr = err
			return
		}
		for {
			if _, err := os.Stat(filepath.Join(dir, "test", "tools", "build.sh")); err == nil {
				rootDir = dir
				return
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				rootErr = fmt.Errorf("no test/tools/build.sh above the working directory")
				return
			}
			dir = parent
		}
	})
	if rootErr != nil {
		t.Fatalf("harness: find repository root: %v", rootErr)
	}
	return rootDir
}

// BuildProgram builds a main package of this module (a path relative to
// the repository root, "./cmd/agentid-composer", or an import path) into a
// directory of the test and returns the binary's path: how a test gets the
// project's plugins to load into SPIRE. The Go build cache makes repeated
// builds a link step.
func BuildProgram(t testing.TB, pkg string) string {
	t.Helper()
	root := repoRoot(t)
	out := filepath.Join(t.TempDir(), filepath.Base(pkg))
	start := time.Now()
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("harness: go build %s: %v\n%s", pkg, err, b)
	}
	t.Logf("harness: built %s in %s", pkg, time.Since(start).Round(time.Millisecond))
	return out
}
