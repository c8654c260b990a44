package harness

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// listener is a real program that binds the port it is given, creates the
// file it is given and waits: python3 (on every machine this suite runs on), since a shell
// cannot listen.
const listener = `import socket, sys, time
s = socket.socket()
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen()
open(sys.argv[2], "w").close()
time.sleep(60)
`

// TestStartProgramOnPortsRetriesLostBind takes the first port handed out
// before the program binds it, as another process on a busy machine may:
// the program exits with EADDRINUSE and is started again on a new port.
func TestStartProgramOnPortsRetriesLostBind(t *testing.T) {
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Fatalf("python3 is not on the PATH: %v", err)
	}
	dir := t.TempDir()
	var attempts []int
	prog, ports := StartProgramOnPorts(t, 1, "listener", 10*time.Second, func(ports []int) (ProgramOptions, func() error) {
		attempts = append(attempts, ports[0])
		if len(attempts) == 1 {
			thief, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(ports[0]))
			if err != nil {
				t.Fatalf("take port %d: %v", ports[0], err)
			}
			t.Cleanup(func() { thief.Close() })
		}
		ready := filepath.Join(dir, "listening-"+strconv.Itoa(ports[0]))
		return ProgramOptions{Name: "listener", Path: python, Args: []string{"-c", listener, strconv.Itoa(ports[0]), ready}},
			func() error { _, err := os.Stat(ready); return err }
	})
	if len(attempts) != 2 || len(ports) != 1 || ports[0] != attempts[1] || attempts[0] == attempts[1] {
		t.Fatalf("attempts on ports %v, returned %v; want a second attempt on a new port", attempts, ports)
	}
	if gone, err := prog.Exited(); gone {
		t.Fatalf("listener exited: %v", err)
	}
}
