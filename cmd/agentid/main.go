// Command agentid is the command line for agentid-server: delegate,
// sub-delegate, revoke, list, audit export/verify, token inspect.
// Run `agentid -h` for usage.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/agentid/agentid/pkg/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], cli.Env{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr})
	stop()
	os.Exit(code)
}
