// Command demo tells agentid's story on the real parts, in one command
// (`make demo`, or `go run ./demo` in test/, the test module): a user
// logs in at an OpenID provider, delegates to an AI agent, the agent calls a
// service that sees both identities, the agent sub-delegates, the user
// revokes, and the next call is denied. Then it stops everything it started.
//
// It runs the same stack as the end-to-end suite (test/e2e/stack): SPIRE
// v1.13.3 with agentid's composer and attestor plugins, agentid-server, Ory
// Hydra, the example service and the Go example agent, each a process of its
// own. SPIRE and Hydra are built on first use (several minutes on two
// cores); later runs take seconds.
//
//	go run ./demo       the story (in test/)
//	go run ./demo -v    the story and every line the harness logs
//
// The stack is built from the harness, whose helpers take a testing.TB: the
// demo hands them a small one of its own (tb.go) instead of running as a
// `go test`, so that what it prints reads as a story, not as test output.
// When something fails, the programs' logs are written to a file whose path
// is printed.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	verbose := flag.Bool("v", false, "also print the harness's log lines as they come")
	flag.Parse()
	os.Exit(run(*verbose, os.Stdout))
}

// run runs the story and returns the exit status.
func run(verbose bool, out io.Writer) (code int) {
	r, err := newRunner(verbose, out)
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		return 1
	}
	d := &demo{r: r, out: out, started: time.Now()}
	// Ctrl-C stops what was started before leaving. The story may still be
	// running meanwhile and fail as its programs go; it then stays silent.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sigs
		d.interrupted.Store(true)
		fmt.Fprintln(out, "\nInterrupted: stopping everything the demo started")
		r.finish()
		os.Exit(130)
	}()

	defer func() {
		if v := recover(); v != nil {
			if _, ok := v.(fatal); !ok {
				r.failWith(fmt.Sprintf("panic: %v", v))
			}
		}
		if d.interrupted.Load() {
			select {} // the signal handler is stopping everything and exits
		}
		d.stop()
		if r.Failed() {
			code = 1
			d.reportFailure()
		}
	}()
	d.story()
	return 0
}

// reportFailure prints the last thing that went wrong and where the
// programs' logs are.
func (d *demo) reportFailure() {
	logs := d.r.Logs()
	f, err := os.CreateTemp("", "agentid-demo-*.log")
	if err == nil {
		_, err = io.WriteString(f, logs)
		f.Close()
	}
	fmt.Fprintln(d.out, "\nThe demo failed.")
	if d.lastStep != "" {
		fmt.Fprintf(d.out, "It was at: %s\n", d.lastStep)
	}
	if msg := d.r.Reason(); msg != "" {
		fmt.Fprintf(d.out, "What went wrong: %s\n", msg)
	}
	if err == nil {
		fmt.Fprintf(d.out, "Every program's log is in %s\n", f.Name())
	} else {
		fmt.Fprintln(d.out, "The logs could not be saved:", err)
		fmt.Fprint(d.out, logs)
	}
}
