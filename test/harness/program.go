package harness

import (
	"path/filepath"
	"testing"
	"time"
)

// ProgramOptions describe a program for StartProgram.
type ProgramOptions struct {
	// Name labels the log file and failure messages; required.
	Name string
	// Path is the binary (BuildProgram's result, say); required.
	Path string
	Args []string
	// Env entries ("KEY=value") are added to the test's environment.
	Env []string
	// Dir is the working directory; default a new t.TempDir().
	Dir string
}

// Program is any other program a test runs (agentid-server, an agent
// process): run like SPIRE's, in its own process group, output in a log
// printed when the test fails, killed when the test ends.
type Program struct {
	proc *process
}

// StartProgram starts the program and returns at once; use WaitReady for
// its readiness.
func StartProgram(t testing.TB, opts ProgramOptions) *Program {
	t.Helper()
	if opts.Name == "" || opts.Path == "" {
		t.Fatalf("harness: program needs a name and a path, got %q and %q", opts.Name, opts.Path)
	}
	logDir := t.TempDir()
	if opts.Dir == "" {
		opts.Dir = logDir
	}
	p := &Program{proc: newProcess(t, filepath.Base(opts.Name), opts.Path, opts.Dir, logDir, opts.Args...)}
	p.proc.env = opts.Env
	p.proc.start(t)
	return p
}

// WaitReady polls ready every 50 ms until it returns nil; it fails the test
// when the program exits first or timeout passes.
func (p *Program) WaitReady(t testing.TB, what string, timeout time.Duration, ready func() error) {
	t.Helper()
	waitReady(t, p.proc, what, timeout, ready)
}

// Exited reports whether the program has ended, and its wait error.
func (p *Program) Exited() (bool, error) { return p.proc.exited() }

// Pid is the program's process id, 0 before it starts.
func (p *Program) Pid() int { return p.proc.pid() }

// LogPath is the file holding the program's stdout and stderr.
func (p *Program) LogPath() string { return p.proc.logPath }

// Stop sends SIGTERM to the program's process group, SIGKILL after 10 s,
// and waits for it.
func (p *Program) Stop(t testing.TB) {
	t.Helper()
	p.proc.stop()
}

// Kill ends the program's process group with SIGKILL and waits for it.
func (p *Program) Kill(t testing.TB) {
	t.Helper()
	p.proc.kill()
}

// Start runs a stopped program again, appending to the same log.
func (p *Program) Start(t testing.TB) {
	t.Helper()
	p.proc.start(t)
}
