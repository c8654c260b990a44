package harness

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
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

// BuildProgram builds a main package of this repository (a path relative
// to the repository root: "./cmd/agentid-composer" or
// "./test/harness/internal/testplugin") into a directory of the test and
// returns the binary's path: how a test gets the project's plugins to load
// into SPIRE. The Go build cache makes repeated builds a link step.
func BuildProgram(t testing.TB, pkg string) string {
	t.Helper()
	out := t.TempDir()
	start := time.Now()
	if err := GoBuild(t.Context(), repoRoot(t), out, pkg); err != nil {
		t.Fatalf("harness: %v", err)
	}
	t.Logf("harness: built %s in %s", pkg, time.Since(start).Round(time.Millisecond))
	return filepath.Join(out, filepath.Base(pkg))
}

// GoBuild builds main packages given relative to the repository root into
// outDir. The repository holds two modules: the project's own (cmd/, pkg/)
// and the test module under test/, which carries the test-only
// dependencies. Each package is built inside the module it belongs to, so
// the project's programs are built exactly as a user builds them (with the
// main module's go.sum) and test programs with the test module's. One go
// command per module lets it link the programs in parallel.
func GoBuild(ctx context.Context, root, outDir string, pkgs ...string) error {
	byModule := map[string][]string{}
	for _, p := range pkgs {
		if rest, ok := strings.CutPrefix(p, "./test/"); ok {
			byModule["test"] = append(byModule["test"], "./"+rest)
		} else {
			byModule["."] = append(byModule["."], p)
		}
	}
	for dir, list := range byModule {
		args := append([]string{"build", "-o", outDir + string(os.PathSeparator)}, list...)
		cmd := exec.CommandContext(ctx, "go", args...)
		cmd.Dir = filepath.Join(root, dir)
		if b, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go %s (in %s): %w\n%s", strings.Join(args, " "), cmd.Dir, err, b)
		}
	}
	return nil
}
