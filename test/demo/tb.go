package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// runner is the testing.TB the harness and the stack need, for a program
// that is not a test: cleanups run in reverse order when the demo ends,
// Fatal unwinds to main through a panic that main recovers, and log lines
// (the harness's and the stack's own) go to a buffer that is printed only
// when something failed, or as they come with -v.
//
// testing.TB has an unexported method, so runner embeds the interface (nil)
// to satisfy it; every method the harness can call is defined here, and one
// that is not would panic on the nil interface, which main reports.
type runner struct {
	testing.TB

	ctx     context.Context
	cancel  context.CancelFunc
	verbose bool
	out     io.Writer

	mu       sync.Mutex
	cleanups []func()
	failed   bool
	reason   string // the first Error or Fatal message
	log      strings.Builder
	tempDir  string
	tempN    int
}

// fatal is the panic value of FailNow.
type fatal struct{}

func newRunner(verbose bool, out io.Writer) (*runner, error) {
	dir, err := os.MkdirTemp("", "agentid-demo-")
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &runner{ctx: ctx, cancel: cancel, verbose: verbose, out: out, tempDir: dir}
	r.Cleanup(func() { os.RemoveAll(dir) })
	return r, nil
}

// finish runs the cleanups, last registered first, as testing does.
func (r *runner) finish() {
	r.cancel()
	for {
		r.mu.Lock()
		n := len(r.cleanups)
		if n == 0 {
			r.mu.Unlock()
			return
		}
		fn := r.cleanups[n-1]
		r.cleanups = r.cleanups[:n-1]
		r.mu.Unlock()
		fn()
	}
}

// Logs returns what was logged so far.
func (r *runner) Logs() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.log.String()
}

func (r *runner) Cleanup(fn func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cleanups = append(r.cleanups, fn)
}

func (r *runner) Log(args ...any) { r.logLine(fmt.Sprintln(args...)) }

func (r *runner) Logf(format string, args ...any) { r.logLine(fmt.Sprintf(format, args...)) }

func (r *runner) logLine(s string) {
	if !strings.HasSuffix(s, "\n") {
		s += "\n"
	}
	r.mu.Lock()
	r.log.WriteString(s)
	r.mu.Unlock()
	if r.verbose {
		fmt.Fprint(r.out, "    | ", strings.ReplaceAll(strings.TrimSuffix(s, "\n"), "\n", "\n    | "), "\n")
	}
}

func (r *runner) Error(args ...any) { r.failWith(fmt.Sprintln(args...)) }

func (r *runner) Errorf(format string, args ...any) { r.failWith(fmt.Sprintf(format, args...)) }

func (r *runner) Fatal(args ...any) { r.failWith(fmt.Sprintln(args...)); r.FailNow() }

func (r *runner) Fatalf(format string, args ...any) {
	r.failWith(fmt.Sprintf(format, args...))
	r.FailNow()
}

// failWith logs msg and marks the run failed, keeping the first reason.
func (r *runner) failWith(msg string) {
	r.logLine(msg)
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.failed {
		r.reason = strings.TrimSpace(msg)
	}
	r.failed = true
}

// Reason is the first failure's message.
func (r *runner) Reason() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.reason
}

func (r *runner) Fail() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failed = true
}

func (r *runner) FailNow() {
	r.Fail()
	panic(fatal{})
}

func (r *runner) Failed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.failed
}

func (r *runner) Helper() {}

func (r *runner) Name() string { return "demo" }

func (r *runner) TempDir() string {
	r.mu.Lock()
	r.tempN++
	dir := filepath.Join(r.tempDir, fmt.Sprintf("%03d", r.tempN))
	r.mu.Unlock()
	if err := os.Mkdir(dir, 0o700); err != nil {
		r.Fatalf("demo: make temporary directory: %v", err)
	}
	return dir
}

func (r *runner) ArtifactDir() string { return r.TempDir() }

func (r *runner) Context() context.Context { return r.ctx }

func (r *runner) Output() io.Writer { return writerFunc(func(b []byte) { r.logLine(string(b)) }) }

func (r *runner) Attr(key, value string) { r.Logf("%s: %s", key, value) }

func (r *runner) Setenv(key, value string) {
	old, had := os.LookupEnv(key)
	os.Setenv(key, value)
	r.Cleanup(func() {
		if had {
			os.Setenv(key, old)
		} else {
			os.Unsetenv(key)
		}
	})
}

func (r *runner) Chdir(dir string) {
	old, err := os.Getwd()
	if err != nil {
		r.Fatalf("demo: %v", err)
	}
	if err := os.Chdir(dir); err != nil {
		r.Fatalf("demo: %v", err)
	}
	r.Cleanup(func() { _ = os.Chdir(old) }) // back to where the demo started; nothing runs after it
}

func (r *runner) Skip(args ...any)                 { r.Fatal(args...) }
func (r *runner) Skipf(format string, args ...any) { r.Fatalf(format, args...) }
func (r *runner) SkipNow()                         { r.FailNow() }
func (r *runner) Skipped() bool                    { return false }

type writerFunc func([]byte)

func (f writerFunc) Write(b []byte) (int, error) { f(b); return len(b), nil }
