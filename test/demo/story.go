package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/agentid/agentid/examples/service/whoami"
	"github.com/agentid/agentid/pkg/audit"
	"github.com/agentid/agentid/pkg/claims"
	"github.com/agentid/agentid/pkg/delegation"
	"github.com/agentid/agentid/test/e2e/stack"
)

// demo is one run of the story.
type demo struct {
	r        *runner
	out      io.Writer
	started  time.Time
	lastStep string
	st       *stack.Stack
	step     int
	// interrupted is set on Ctrl-C: the signal handler stops everything.
	interrupted atomic.Bool
}

var dlgPattern = regexp.MustCompile(`dlg_[0-9a-z]{26}`)

// say prints one line of the story.
func (d *demo) say(format string, args ...any) {
	if d.interrupted.Load() {
		return
	}
	fmt.Fprintf(d.out, format+"\n", args...)
}

// next starts a numbered step.
func (d *demo) next(format string, args ...any) {
	d.step++
	d.lastStep = fmt.Sprintf(format, args...)
	d.say("\n%d. %s", d.step, d.lastStep)
}

// detail prints an indented line under the current step.
func (d *demo) detail(format string, args ...any) {
	d.say("     "+format, args...)
}

func (d *demo) story() {
	d.say("agentid demo: an AI agent acting for a user, on real SPIRE and a real OpenID provider")
	d.say("")
	d.say("Setting up a SPIFFE trust domain on this machine")
	d.lastStep = "setting up"
	d.st = stack.Start(d.r, stack.Options{Progress: func(format string, args ...any) {
		d.say("  · "+format, args...)
	}})
	st := d.st
	entries := st.WaitForEntries(d.r, 30*time.Second)
	d.say("  · agentid-server registered its declared agents as SPIRE entries:")
	for _, a := range stack.Agents {
		var sels []string
		for _, s := range entries[a.ID].Selectors {
			sels = append(sels, s.Type+":"+s.Value)
		}
		d.say("      %-46s ⇐ %s", a.ID, strings.Join(sels, " + "))
	}
	orch, analyst := st.Manifest(d.r, "orchestrator"), st.Manifest(d.r, "market-analysis")

	d.say("")
	d.say("The story")

	d.next("alice logs in at the OpenID provider (Ory Hydra, %s).", st.Hydra.IssuerURL())
	alice := st.Login(d.r, "alice", "alice@example.com", "marketing")
	d.detail("Her ID token says: sub=alice, email=alice@example.com, groups=[marketing], audience %s.", stack.UserAudience)

	d.next("alice asks the orchestrator agent to \"check the Q3 campaign for GDPR issues\" and hands it her ID token.")
	stdout, stderr, err := st.Exec(d.r, st.WorkloadEnv(orch), st.Bin(d.r, "go-agent"),
		"-server-addr", st.ServerAddr, "-server-id", stack.ServerID.String(),
		"-service-url", st.ServiceURL(), "-service-id", stack.ServiceID.String(),
		"-user-token-file", alice.TokenFile, "-scopes", "campaigns:read compliance:check campaigns:write",
		"-ttl", "30m", "-intent", "check the Q3 campaign for GDPR issues", "-keep")
	if err != nil {
		d.r.Fatalf("the orchestrator (examples/go-agent) failed: %v", err)
	}
	root := dlgPattern.FindString(stderr)
	if root == "" {
		d.r.Fatalf("the orchestrator did not say which delegation it got: %q", stderr)
	}
	rootD := d.get(root)
	d.detail("SPIRE attested the agent process by its signed manifest: it is %s.", stack.Orchestrator)
	d.detail("With alice's token it asked agentid-server for a delegation over mTLS, and got %s:", root)
	d.detail("  %s, until %s.", strings.Join(rootD.scopes, " "), rootD.expires.Local().Format("15:04:05"))
	d.detail("  It asked for campaigns:write too; the policy does not grant that to alice, so it was left out.")

	d.next("The orchestrator calls the CRM service over mTLS, with a delegated JWT-SVID as its bearer token.")
	d.detail("The service checked the certificate and the token together, and answers:")
	d.answer(stdout)

	d.next("The orchestrator passes part of its delegation on to the market-analysis agent.")
	out, err := st.CLIAs(d.r, orch, "-o", "json", "sub-delegate", "-parent", root, "-agent", stack.Analyst.String(),
		"-scope", "campaigns:read", "-ttl", "10m", "-intent", "pull the Q3 campaign figures")
	if err != nil {
		d.r.Fatalf("sub-delegation: %v", err)
	}
	sub := stack.ParseDelegation(d.r, out).Id
	d.detail("Granted: %s, campaigns:read only, chain orchestrator → market-analysis.", sub)
	_, err = st.CLIAs(d.r, orch, "sub-delegate", "-parent", root, "-agent", stack.Analyst.String(),
		"-scope", "campaigns:read,campaigns:write")
	var ce *stack.CommandError
	if !errors.As(err, &ce) {
		d.r.Fatalf("a sub-delegation wider than its parent was not refused: %v", err)
	}
	d.detail("Passing on campaigns:write as well is refused:")
	d.detail("  %s", strings.TrimPrefix(strings.TrimSpace(ce.Stderr), "agentid: "))

	d.next("market-analysis calls the CRM service under its sub-delegation.")
	r := st.Probe(d.r, analyst, "call", "-url", st.ServiceURL(), "-service-id", stack.ServiceID.String(), "-delegation", sub)
	if r.Code != "OK" || r.Status != http.StatusOK {
		d.r.Fatalf("market-analysis's call: %s %s HTTP %d %s", r.Code, r.Message, r.Status, r.Body)
	}
	d.detail("The service answers:")
	d.answer(r.Body)

	d.next("alice revokes her delegation %s.", root)
	out, err = st.CLI(d.r, nil, "revoke", "-as-user", "-token-file", alice.TokenFile, "-reason", "review done", root)
	if err != nil {
		d.r.Fatalf("revoke: %v", err)
	}
	d.detail("agentid-server: %s", strings.TrimSpace(out))
	d.detail("The sub-delegation %s went with it: authority never outlives its source.", sub)

	d.next("market-analysis calls the service again.")
	denied := d.deniedCall(analyst, sub)
	d.detail("Denied. %s", denied)
	id, _ := delegation.ParseID(sub)
	fresh := st.Probe(d.r, analyst, "jwt", "-spiffe-id", stack.Analyst.String(),
		"-audience", stack.ServiceID.String()+"/demo-after-revocation", "-audience", claims.Marker(id))
	if fresh.Code == "OK" {
		d.r.Fatalf("SPIRE issued a new token under the revoked delegation %s", sub)
	}
	msg := fresh.Message
	if i := strings.Index(msg, "composer: "); i >= 0 {
		msg = msg[i:] // SPIRE's wrapping, down to the composer's own words
	}
	d.detail("And SPIRE issues no new token under it: %s", msg)

	d.next("Everything above is in agentid-server's hash-chained audit log.")
	d.audit()

	d.say("")
	d.say("The whole run took %s.", time.Since(d.started).Round(100*time.Millisecond))
}

// deniedCall repeats market-analysis's call for up to two seconds, until it
// is denied (the service learns of a revocation over its watch stream in
// milliseconds), and says how.
func (d *demo) deniedCall(manifest, sub string) string {
	deadline := time.Now().Add(2 * time.Second)
	for {
		r := d.st.Probe(d.r, manifest, "call", "-url", d.st.ServiceURL(), "-service-id", stack.ServiceID.String(), "-delegation", sub)
		switch {
		case r.Code == "OK" && r.Status != http.StatusOK:
			var e struct {
				Description string `json:"error_description"`
			}
			msg := r.Body
			if json.Unmarshal([]byte(r.Body), &e) == nil && e.Description != "" {
				msg = e.Description
			}
			return fmt.Sprintf("The service refused the token the agent still held (HTTP %d): %s", r.Status, msg)
		case r.Code != "OK":
			return "No token: " + r.Message
		}
		if time.Now().After(deadline) {
			d.r.Fatalf("the service still accepted market-analysis's call 2s after the revocation")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

type delegationView struct {
	scopes  []string
	expires time.Time
}

func (d *demo) get(id string) delegationView {
	out, err := d.st.CLI(d.r, nil, "-o", "json", "get", id)
	if err != nil {
		d.r.Fatalf("agentid get %s: %v", id, err)
	}
	p := stack.ParseDelegation(d.r, out)
	return delegationView{scopes: p.Scopes, expires: p.ExpiresAt.AsTime()}
}

// answer prints the service's /whoami answer.
func (d *demo) answer(body string) {
	var a whoami.Answer
	if err := json.Unmarshal([]byte(body), &a); err != nil {
		d.r.Fatalf("the service's answer %q: %v", body, err)
	}
	chain := make([]string, len(a.Delegation.Chain))
	for i, c := range a.Delegation.Chain {
		chain[i] = shortName(c)
	}
	d.detail("  agent       %s   (its mTLS certificate, and the token's sub)", a.Agent)
	d.detail("  for user    %s <%s>, signed in at %s", a.User.Subject, a.User.Email, a.User.Issuer)
	d.detail("  scopes      %s", strings.Join(a.Scopes, " "))
	d.detail("  chain       %s", strings.Join(chain, " → "))
	d.detail("  delegation  %s (root %s)", a.Delegation.ID, a.Delegation.Root)
}

// actor shortens an audit actor: an agent's name, a user's subject.
func actor(a string) string {
	if strings.HasPrefix(a, "user:") {
		if i := strings.LastIndexByte(a, '#'); i >= 0 {
			return a[i+1:] + " (user)"
		}
	}
	if strings.HasPrefix(a, "spiffe://") {
		return shortName(a)
	}
	return a
}

func shortName(id string) string {
	if sid, err := spiffeid.FromString(id); err == nil {
		return filepath.Base(sid.Path())
	}
	return id
}

// audit exports the log, verifies it offline with the CLI, and prints the
// events that tell the story.
func (d *demo) audit() {
	out, err := d.st.CLI(d.r, nil, "audit", "export")
	if err != nil {
		d.r.Fatalf("audit export: %v", err)
	}
	path := d.st.ScratchFile(d.r, "audit.jsonl", []byte(out))
	verified, err := d.st.CLI(d.r, nil, "audit", "verify", path)
	if err != nil {
		d.r.Fatalf("audit verify: %v", err)
	}
	d.detail("`agentid audit verify`: %s", strings.TrimSpace(verified))
	for ev, err := range audit.ReadJSONL(bytes.NewReader([]byte(out))) {
		if err != nil {
			d.r.Fatalf("read the audit export: %v", err)
		}
		if !slices.Contains([]audit.Type{audit.TypeDelegationCreated, audit.TypeSubDelegated, audit.TypeRevoked,
			audit.TypeDenied, audit.TypeTokenIssued}, ev.Type) {
			continue
		}
		what, extra := ev.Type.String(), ""
		switch ev.Type {
		case audit.TypeTokenIssued:
			extra = ", audience " + ev.Detail["audience"]
		case audit.TypeDenied:
			what += " (" + ev.Detail["reason"] + ")"
		}
		d.detail("  #%-3d %-26s %s  agent %-16s by %s%s", ev.Sequence, what, ev.DelegationID, shortName(ev.Agent), actor(ev.Actor), extra)
	}
}

// stop runs the cleanups (every program stopped, every temporary file
// removed) and checks that no process the demo started is left.
func (d *demo) stop() {
	groups := childGroups()
	begin := time.Now()
	d.r.finish()
	left := processesIn(groups)
	d.say("")
	if len(groups) == 0 {
		d.say("Nothing was left running.")
		return
	}
	if len(left) > 0 {
		d.say("Stopped everything the demo started, except processes %v.", left)
		d.r.Errorf("demo: processes %v still running after the stop", left)
		return
	}
	d.say("Stopped everything the demo started (%d process groups, SPIRE's plugins included) in %s; none is left.",
		len(groups), time.Since(begin).Round(100*time.Millisecond))
}

// childGroups lists the process groups of this process's children: the
// harness starts each program as the leader of its own group.
func childGroups() []int {
	var groups []int
	self := os.Getpid()
	for _, p := range procs() {
		if p.ppid == self && p.pgrp == p.pid {
			groups = append(groups, p.pgrp)
		}
	}
	return groups
}

// processesIn lists the processes still alive in the given groups.
func processesIn(groups []int) []int {
	var left []int
	for _, p := range procs() {
		if slices.Contains(groups, p.pgrp) && p.state != "Z" {
			left = append(left, p.pid)
		}
	}
	return left
}

type proc struct {
	pid, ppid, pgrp int
	state           string
}

// procs reads /proc/<pid>/stat of every process.
func procs() []proc {
	dirs, _ := filepath.Glob("/proc/[0-9]*/stat")
	var out []proc
	for _, path := range dirs {
		b, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		// "pid (comm) state ppid pgrp ...": comm may hold spaces and ')'.
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		pid, err1 := strconv.Atoi(strings.Fields(s)[0])
		if len(f) < 3 || err1 != nil {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		pgrp, _ := strconv.Atoi(f[2])
		out = append(out, proc{pid: pid, ppid: ppid, pgrp: pgrp, state: f[0]})
	}
	return out
}
