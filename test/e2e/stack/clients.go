package stack

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	delegationv1 "github.com/agentid/agentid/proto/agentid/delegation/v1"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/agentid/agentid/test/harness"
)

// commandTimeout bounds one run of the CLI or the probe.
const commandTimeout = 30 * time.Second

// CommandError is a program run that ended with a non-zero status.
type CommandError struct {
	// Args are the program's name and arguments.
	Args []string
	// Code is the exit status.
	Code int
	// Stderr is what the program wrote on standard error: its refusal.
	Stderr string
}

func (e *CommandError) Error() string {
	return fmt.Sprintf("%s exited with %d: %s", strings.Join(e.Args, " "), e.Code, strings.TrimSpace(e.Stderr))
}

// Run runs a program the stack built with extra environment entries and
// returns its standard output. A non-zero exit is a *CommandError holding
// standard error; a program that cannot be started, or overruns
// commandTimeout, fails the test.
func (s *Stack) Run(t testing.TB, env []string, name string, args ...string) (string, error) {
	t.Helper()
	stdout, _, err := s.Exec(t, env, s.Bin(t, name), args...)
	return stdout, err
}

// Exec is Run for any program, returning standard error too.
func (s *Stack) Exec(t testing.TB, env []string, path string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), commandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Dir = s.dir
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	name := filepath.Base(path)
	if ctx.Err() != nil {
		t.Fatalf("stack: %s %s did not finish within %s; stderr: %s", name, strings.Join(args, " "), commandTimeout, errOut.String())
	}
	if ee, ok := errors.AsType[*exec.ExitError](err); ok {
		return out.String(), errOut.String(), &CommandError{Args: append([]string{name}, args...), Code: ee.ExitCode(), Stderr: errOut.String()}
	}
	if err != nil {
		t.Fatalf("stack: run %s: %v", name, err)
	}
	return out.String(), errOut.String(), nil
}

// CLI runs `agentid -socket <local socket> args...`: the operator on the
// host, an admin by the socket's file permissions.
func (s *Stack) CLI(t testing.TB, env []string, args ...string) (string, error) {
	t.Helper()
	return s.Run(t, env, "agentid", append([]string{"-socket", s.LocalSocket}, args...)...)
}

// CLIAs runs the CLI as a workload attested with manifest, over mTLS with
// the X509-SVID SPIRE issues to that process: the agent itself calling
// agentid-server.
func (s *Stack) CLIAs(t testing.TB, manifest string, args ...string) (string, error) {
	t.Helper()
	return s.Run(t, s.WorkloadEnv(manifest), "agentid",
		append([]string{"-server", s.ServerAddr, "-server-id", ServerID.String(), "-workload-api", s.Agent.WorkloadAddr()}, args...)...)
}

// ParseDelegation decodes `agentid -o json` output of one delegation.
func ParseDelegation(t testing.TB, out string) *delegationv1.Delegation {
	t.Helper()
	var d delegationv1.Delegation
	if err := protojson.Unmarshal([]byte(out), &d); err != nil {
		t.Fatalf("stack: decode delegation %q: %v", out, err)
	}
	return &d
}

// User is a user who logged in at Hydra.
type User struct {
	Subject string
	Email   string
	Groups  []string
	// IDToken is the ID token Hydra issued.
	IDToken string
	// TokenFile holds IDToken (mode 0600), for the CLI's -token-file.
	TokenFile string
}

// Login runs Hydra's authorization-code flow for the user and keeps the
// ID token in a file.
func (s *Stack) Login(t testing.TB, subject, email string, groups ...string) User {
	t.Helper()
	u := User{Subject: subject, Email: email, Groups: groups}
	u.IDToken = s.Hydra.Login(t, harness.LoginOptions{Subject: subject, Email: email, Groups: groups, Audience: UserAudience})
	f, err := os.CreateTemp(s.dir, "token-"+subject+"-")
	if err != nil {
		t.Fatalf("stack: %v", err)
	}
	defer f.Close()
	if _, err := f.WriteString(u.IDToken); err != nil {
		t.Fatalf("stack: write token: %v", err)
	}
	u.TokenFile = f.Name()
	return u
}

// ProbeResult is what the probe program printed: SPIRE's answer to one
// Workload API call made by a process attested with a given manifest.
type ProbeResult struct {
	// Code is the gRPC code's name, "OK" when SPIRE issued.
	Code    string   `json:"code"`
	Message string   `json:"message"`
	IDs     []string `json:"ids"`
	Token   string   `json:"token"`
	// Status and Body are the service's answer to `call`.
	Status int    `json:"status"`
	Body   string `json:"body"`
	// Accepted and AnsweredAt report `call -until-refused`: the 200s
	// before the last answer, and when that answer arrived.
	Accepted   int       `json:"accepted"`
	AnsweredAt time.Time `json:"answered_at"`
}

// Probe runs the probe program attested with manifest ("" for none):
// `x509`, or `jwt -spiffe-id ID -audience A ...`.
func (s *Stack) Probe(t testing.TB, manifest string, args ...string) ProbeResult {
	t.Helper()
	out, err := s.Run(t, s.WorkloadEnv(manifest), "probe", args...)
	if err != nil {
		t.Fatalf("stack: probe %s: %v", strings.Join(args, " "), err)
	}
	var r ProbeResult
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("stack: probe output %q: %v", out, err)
	}
	return r
}

// ProbeAs is Probe run from another executable (Impostor).
func (s *Stack) ProbeAs(t testing.TB, exe, manifest string, args ...string) ProbeResult {
	t.Helper()
	out, _, err := s.Exec(t, s.WorkloadEnv(manifest), exe, args...)
	if err != nil {
		t.Fatalf("stack: %s %s: %v", filepath.Base(exe), strings.Join(args, " "), err)
	}
	var r ProbeResult
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("stack: probe output %q: %v", out, err)
	}
	return r
}

// WaitProbe runs the probe until ok accepts its result, and fails the test
// with what, the last result and the spire-agent log's path after timeout.
func (s *Stack) WaitProbe(t testing.TB, what string, timeout time.Duration, ok func(ProbeResult) bool, manifest string, args ...string) ProbeResult {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		r := s.Probe(t, manifest, args...)
		if ok(r) {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("stack: %s not reached within %s; last answer: %s %s (spire-agent log: %s)",
				what, timeout, r.Code, r.Message, s.Agent.LogPath())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// ScratchFile writes data to a new file in the stack's directory.
func (s *Stack) ScratchFile(t testing.TB, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(s.dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatalf("stack: %v", err)
	}
	return p
}

// Command prepares a program the stack built to run as a workload attested
// with manifest, for a test that runs it in the background itself.
func (s *Stack) Command(t testing.TB, ctx context.Context, manifest, name string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.CommandContext(ctx, s.Bin(t, name), args...)
	cmd.Env = append(os.Environ(), s.WorkloadEnv(manifest)...)
	cmd.Dir = s.dir
	return cmd
}

// RepoPath is the absolute path of a file of the repository.
func (s *Stack) RepoPath(t testing.TB, rel string) string {
	t.Helper()
	return filepath.Join(repoRoot(t), filepath.FromSlash(rel))
}
