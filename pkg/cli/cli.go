// Package cli is the agentid command line: delegate, sub-delegate, revoke,
// read delegations, agents and the audit log from agentid-server, verify an
// audit export offline, prune the archived part of the log, and inspect a
// JWT-SVID.
//
// It talks to the server over its local unix socket (admins on the host) or
// over mTLS with an X509-SVID from the Workload API (an agent or a front
// end). A user's OIDC token is read from a file, standard input or the
// AGENTID_USER_TOKEN environment variable, never from a flag: flags end up
// in shell history and in the process list.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// TokenEnv is the environment variable a user token may come from.
const TokenEnv = "AGENTID_USER_TOKEN" //nolint:gosec // the name of an environment variable, not a credential

// maxTokenFile bounds a token read from a file or standard input.
const maxTokenFile = 64 << 10

// Env is what a command may touch of the world; tests supply their own.
type Env struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	Getenv         func(string) string
}

// Main runs the command line and returns the exit code: 0 on success, 1 when
// the command failed, 2 for a usage error.
func Main(ctx context.Context, args []string, env Env) int {
	if env.Getenv == nil {
		env.Getenv = os.Getenv
	}
	err := run(ctx, args, env)
	var usage usageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &usage):
		fmt.Fprintln(env.Stderr, "agentid:", err)
		return 2
	case errors.Is(err, flag.ErrHelp):
		return 0
	default:
		fmt.Fprintln(env.Stderr, "agentid:", err)
		return 1
	}
}

type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

const usage = `usage: agentid [connection flags] <command> [flags]

commands:
  delegate       create a delegation for the user whose token is given
  sub-delegate   pass part of a delegation on to another agent (as its agent, over mTLS)
  revoke         revoke a delegation and its descendants
  get            show one delegation
  list           list delegations
  agents         list declared agents and their SPIRE sync state
  audit export   write the audit log as JSON Lines (-after SEQ: only the events after it)
  audit verify   verify an audit export offline (-from SEQ:HASH, -head SEQ:HASH)
  audit prune    delete the events through an archived anchor (-through SEQ:HASH; admins)
  token inspect  decode a JWT-SVID and show agent, user, scopes, chain (no signature check)

connection flags:
  -socket PATH          agentid-server's local socket (default /run/agentid/agentid.sock)
  -server HOST:PORT     agentid-server's mTLS address (instead of -socket)
  -server-id ID         the server's SPIFFE ID (with -server)
  -workload-api ADDR    Workload API socket for this process's X509-SVID (with -server)
  -o table|json         output format (default table)

user tokens: -token-file PATH ("-" for standard input), or $AGENTID_USER_TOKEN
`

type globals struct {
	socket, server, serverID, workloadAPI, output string
}

func run(ctx context.Context, args []string, env Env) error {
	var g globals
	fs := flag.NewFlagSet("agentid", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	fs.Usage = func() { fmt.Fprint(env.Stderr, usage) }
	fs.StringVar(&g.socket, "socket", "/run/agentid/agentid.sock", "")
	fs.StringVar(&g.server, "server", "", "")
	fs.StringVar(&g.serverID, "server-id", "", "")
	fs.StringVar(&g.workloadAPI, "workload-api", "", "")
	fs.StringVar(&g.output, "o", "table", "")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err.Error()}
	}
	if g.output != "table" && g.output != "json" {
		return usagef("-o must be table or json")
	}
	rest := fs.Args()
	if len(rest) == 0 {
		fmt.Fprint(env.Stderr, usage)
		return usagef("no command")
	}
	cmd, rest := rest[0], rest[1:]
	if (cmd == "audit" || cmd == "token") && len(rest) > 0 {
		cmd, rest = cmd+" "+rest[0], rest[1:]
	}
	c := &command{g: g, env: env}
	switch cmd {
	case "delegate":
		return c.delegate(ctx, rest)
	case "sub-delegate":
		return c.subDelegate(ctx, rest)
	case "revoke":
		return c.revoke(ctx, rest)
	case "get":
		return c.get(ctx, rest)
	case "list":
		return c.list(ctx, rest)
	case "agents":
		return c.agents(ctx, rest)
	case "audit export":
		return c.auditExport(ctx, rest)
	case "audit verify":
		return c.auditVerify(rest)
	case "audit prune":
		return c.auditPrune(ctx, rest)
	case "token inspect":
		return c.tokenInspect(rest)
	}
	return usagef("unknown command %q", cmd)
}

type command struct {
	g   globals
	env Env
}

// readToken reads a user token from a file ("-" = stdin) or the environment.
func (c *command) readToken(file string, required bool) (string, error) {
	var raw []byte
	switch {
	case file == "-":
		b, err := io.ReadAll(io.LimitReader(c.env.Stdin, maxTokenFile+1))
		if err != nil {
			return "", fmt.Errorf("failed to read token from standard input: %w", err)
		}
		raw = b
	case file != "":
		f, err := os.Open(file)
		if err != nil {
			return "", fmt.Errorf("failed to read token: %w", err)
		}
		defer f.Close()
		b, err := io.ReadAll(io.LimitReader(f, maxTokenFile+1))
		if err != nil {
			return "", fmt.Errorf("failed to read token: %w", err)
		}
		raw = b
	default:
		raw = []byte(c.env.Getenv(TokenEnv))
	}
	if len(raw) > maxTokenFile {
		return "", fmt.Errorf("token is larger than %d bytes", maxTokenFile)
	}
	tok := strings.TrimSpace(string(raw))
	if tok == "" && required {
		return "", usagef("a user token is required: -token-file PATH, -token-file - (stdin) or $%s", TokenEnv)
	}
	return tok, nil
}

// scopeList collects repeated -scope flags, each possibly comma-separated.
type scopeList []string

func (s *scopeList) String() string { return strings.Join(*s, ",") }
func (s *scopeList) Set(v string) error {
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*s = append(*s, p)
		}
	}
	return nil
}

func newFlags(env Env, name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	return fs
}

func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err.Error()}
	}
	return nil
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}
