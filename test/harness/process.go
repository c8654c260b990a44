package harness

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	// pollInterval is how often readiness conditions are checked. It is the
	// longest the harness ever sleeps at once.
	pollInterval = 50 * time.Millisecond

	// stopGrace is how long a stopped process gets between SIGTERM and
	// SIGKILL. SPIRE and Hydra shut down in well under a second.
	stopGrace = 10 * time.Second

	// logTail is how much of each process log is printed when a test fails.
	logTail = 64 << 10
)

// process is one outside program run by the harness. It is started in its
// own process group so that stopping it also stops what it spawned
// (SPIRE's external plugins), and its output goes to a log file that is
// printed when the test fails.
type process struct {
	name    string
	path    string
	args    []string
	env     []string // added to the test's environment
	dir     string
	logPath string
	// logStart is the log's size when the current run started.
	logStart int64

	mu      sync.Mutex
	cmd     *exec.Cmd
	cancel  context.CancelFunc
	done    chan struct{}
	waitErr error
}

// newProcess prepares a process whose log lives in logDir and registers the
// cleanup that kills it and, when the test failed, prints its log.
func newProcess(t testing.TB, name, path, dir, logDir string, args ...string) *process {
	t.Helper()
	p := &process{
		name:    name,
		path:    path,
		args:    args,
		dir:     dir,
		logPath: filepath.Join(logDir, name+".log"),
	}
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			p.dumpLog(t)
		}
	})
	return p
}

// start runs the program. Output is appended to the log, so a restarted
// process keeps the earlier run's lines above its own.
func (p *process) start(t testing.TB) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil && !p.exitedLocked() {
		t.Fatalf("harness: %s is already running", p.name)
	}
	logFile, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatalf("harness: open %s log: %v", p.name, err)
	}
	if fi, err := logFile.Stat(); err == nil {
		p.logStart = fi.Size()
	}
	fmt.Fprintf(logFile, "==== harness: start %s %q at %s\n", p.path, p.args, time.Now().Format(time.RFC3339Nano))

	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, p.path, p.args...)
	cmd.Dir = p.dir
	if len(p.env) > 0 {
		cmd.Env = append(os.Environ(), p.env...)
	}
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	// Own process group: signals reach the plugins SPIRE started. Pdeathsig
	// stops the program if the test binary dies without running cleanups
	// (a -timeout panic).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return signalGroup(cmd, syscall.SIGKILL) }
	if err := cmd.Start(); err != nil {
		cancel()
		logFile.Close()
		t.Fatalf("harness: start %s: %v", p.name, err)
	}
	done := make(chan struct{})
	p.cmd, p.cancel, p.done, p.waitErr = cmd, cancel, done, nil
	go func() {
		err := cmd.Wait()
		logFile.Close()
		p.mu.Lock()
		p.waitErr = err
		p.mu.Unlock()
		close(done)
	}()
}

// stop asks the process group to terminate and kills it after stopGrace.
func (p *process) stop() {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = signalGroup(cmd, syscall.SIGTERM)
	timer := time.NewTimer(stopGrace)
	defer timer.Stop()
	select {
	case <-done:
		// The leader is gone; plugins that ignored SIGTERM still die.
		_ = signalGroup(cmd, syscall.SIGKILL)
	case <-timer.C:
		p.kill()
	}
}

// kill sends SIGKILL to the process group and waits for the leader.
func (p *process) kill() {
	p.mu.Lock()
	cmd, cancel, done := p.cmd, p.cancel, p.done
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	cancel()
	_ = signalGroup(cmd, syscall.SIGKILL)
	<-done
}

// exited reports whether the process has ended, and how.
func (p *process) exited() (bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.exitedLocked(), p.waitErr
}

func (p *process) exitedLocked() bool {
	if p.done == nil {
		return true
	}
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// pid is the process id of the running program, 0 when none.
func (p *process) pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.cmd.Process == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

func (p *process) dumpLog(t testing.TB) {
	t.Helper()
	f, err := os.Open(p.logPath)
	if err != nil {
		t.Logf("harness: %s log: %v", p.name, err)
		return
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() > logTail {
		_, _ = f.Seek(-logTail, io.SeekEnd)
	}
	b, _ := io.ReadAll(f)
	t.Logf("harness: ---- %s log (%s, last %d KiB at most) ----\n%s\n---- end of %s log ----",
		p.name, p.logPath, logTail>>10, b, p.name)
}

func signalGroup(cmd *exec.Cmd, sig syscall.Signal) error {
	if cmd.Process == nil {
		return nil
	}
	err := syscall.Kill(-cmd.Process.Pid, sig)
	if errors.Is(err, syscall.ESRCH) {
		return nil
	}
	return err
}

// waitReady polls ready every pollInterval until it returns nil, the
// process exits, or timeout passes; the last two fail the test.
func waitReady(t testing.TB, p *process, what string, timeout time.Duration, ready func() error) {
	t.Helper()
	if err := awaitReady(p, what, timeout, ready); err != nil {
		t.Fatalf("harness: %v", err)
	}
}

// errExited means the process ended before it was ready.
var errExited = errors.New("exited")

// awaitReady is waitReady returning the failure instead: an error wrapping
// errExited when the process ended first, so that a caller can start it
// again (see startOnPorts).
func awaitReady(p *process, what string, timeout time.Duration, ready func() error) error {
	deadline := time.Now().Add(timeout)
	ticker := time.NewTicker(pollInterval)
	defer ticker.Stop()
	for {
		err := ready()
		if err == nil {
			return nil
		}
		if p != nil {
			if gone, werr := p.exited(); gone {
				return fmt.Errorf("%s %w before %s: %w (last check: %w)", p.name, errExited, what, werr, err)
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not reached within %s: %w", what, timeout, err)
		}
		<-ticker.C
	}
}

// socketDir makes a short directory for unix sockets: a socket path must fit
// in 108 bytes, which t.TempDir() paths (named after the test) can exceed.
func socketDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "aid")
	if err != nil {
		t.Fatalf("harness: make socket dir: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}
