package harness

import (
	"bytes"
	"errors"
	"net"
	"os"
	"testing"
	"time"
)

// bindAttempts is how many times a program is started on fresh ports when
// its ports were taken between FreePort and its bind.
const bindAttempts = 3

// addrInUse is what a program logs when its listen fails with EADDRINUSE:
// Go's text (agentid's programs, SPIRE, Hydra), compared in lower case so
// that strerror's "Address already in use" matches too.
var addrInUse = []byte("address already in use")

// FreePort asks the kernel for a free loopback TCP port and releases it.
// Another process may take the port before the program the test starts
// binds it (a race the 2-core CI machines do lose): start programs on such
// ports with StartProgramOnPorts, which starts them again on new ports when
// that happens.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("harness: find free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// freePorts returns n distinct ports from FreePort.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	ports := make([]int, 0, n)
	seen := map[int]bool{}
	for len(ports) < n {
		if p := FreePort(t); !seen[p] {
			seen[p] = true
			ports = append(ports, p)
		}
	}
	return ports
}

// lostBind reports whether the process ended because a port it was given
// was taken: it exited and its log says so.
func (p *process) lostBind() bool {
	if gone, _ := p.exited(); !gone {
		return false
	}
	p.mu.Lock()
	start := p.logStart
	p.mu.Unlock()
	b, err := os.ReadFile(p.logPath)
	if err != nil || int64(len(b)) < start {
		return false
	}
	// This run's lines only: a restarted process appends to its log.
	return bytes.Contains(bytes.ToLower(b[start:]), addrInUse)
}

// startOnPorts calls start with n fresh ports until it returns nil, and
// again (up to bindAttempts in all) while it fails because its process lost
// one of the ports to another (the process ended with EADDRINUSE in its
// log). start returns the process it started, and its readiness error.
// Any other failure fails the test.
func startOnPorts(t testing.TB, n int, start func(ports []int) (*process, error)) []int {
	t.Helper()
	for attempt := 1; ; attempt++ {
		ports := freePorts(t, n)
		p, err := start(ports)
		if err == nil {
			return ports
		}
		if attempt < bindAttempts && p != nil && errors.Is(err, errExited) && p.lostBind() {
			t.Logf("harness: %s lost one of the ports %v to another process (attempt %d of %d); starting it on new ones", p.name, ports, attempt, bindAttempts)
			continue
		}
		t.Fatalf("harness: %v", err)
	}
}

// StartProgramOnPorts starts a program that listens on n loopback TCP
// ports and waits until ready returns nil. program is given n fresh ports
// (FreePort) and returns the options to start with and the readiness
// check; when the program exits because one of the ports was taken meanwhile
// (EADDRINUSE in its log), it is started again on new ports, up to three
// times in all. It returns the program and the ports it listens on.
func StartProgramOnPorts(t testing.TB, n int, what string, timeout time.Duration,
	program func(ports []int) (ProgramOptions, func() error)) (*Program, []int) {
	t.Helper()
	var prog *Program
	ports := startOnPorts(t, n, func(ports []int) (*process, error) {
		opts, ready := program(ports)
		prog = StartProgram(t, opts)
		return prog.proc, awaitReady(prog.proc, what, timeout, ready)
	})
	return prog, ports
}
