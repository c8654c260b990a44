package harness

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestProgramStopKillsGroup runs a shell that starts a child, as SPIRE
// starts its plugins, and checks that Stop ends both, that the
// environment and log work, and that Start runs the program again.
func TestProgramStopKillsGroup(t *testing.T) {
	dir := t.TempDir()
	childPid := filepath.Join(dir, "child.pid")
	p := StartProgram(t, ProgramOptions{
		Name: "sh",
		Path: "/bin/sh",
		Args: []string{"-c", `sleep 60 & echo $! > "$CHILD_PID"; echo "ready $GREETING"; wait`},
		Env:  []string{"CHILD_PID=" + childPid, "GREETING=hello"},
	})
	p.WaitReady(t, "child started", 10*time.Second, func() error {
		b, err := os.ReadFile(p.LogPath())
		if err != nil {
			return err
		}
		if !strings.Contains(string(b), "ready hello") {
			return errors.New("no greeting yet")
		}
		if _, err := os.Stat(childPid); err != nil {
			return err
		}
		return nil
	})
	b, err := os.ReadFile(childPid)
	if err != nil {
		t.Fatal(err)
	}
	child, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	if p.Pid() == 0 {
		t.Fatal("no pid while running")
	}

	p.Stop(t)
	if gone, _ := p.Exited(); !gone {
		t.Fatal("program still running after Stop")
	}
	// The child may linger as a zombie of init for an instant.
	deadline := time.Now().Add(5 * time.Second)
	for syscall.Kill(child, 0) == nil && !isZombie(child) {
		if time.Now().After(deadline) {
			t.Fatalf("child %d survived Stop", child)
		}
		time.Sleep(pollInterval)
	}

	p.Start(t)
	if gone, _ := p.Exited(); gone {
		t.Fatal("program not running after Start")
	}
	p.Kill(t)
	gone, werr := p.Exited()
	if !gone {
		t.Fatal("program running after Kill")
	}
	var exit *exec.ExitError
	if !errors.As(werr, &exit) {
		t.Fatalf("wait error %v, want the program killed", werr)
	}
	b, err = os.ReadFile(p.LogPath())
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(b), "==== harness: start /bin/sh"); n != 2 {
		t.Fatalf("log has %d start lines, want 2:\n%s", n, b)
	}
}

func isZombie(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	fields := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	return len(fields) > 0 && fields[0] == "Z"
}
