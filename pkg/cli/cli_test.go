package cli_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/agentid/agentid/pkg/claims"
	"github.com/agentid/agentid/pkg/cli"
	"github.com/agentid/agentid/pkg/delegation"
	"github.com/agentid/agentid/pkg/server/servertest"
)

type result struct {
	code           int
	stdout, stderr string
}

func run(t *testing.T, env map[string]string, stdin string, args ...string) result {
	t.Helper()
	var out, errOut bytes.Buffer
	code := cli.Main(context.Background(), args, cli.Env{
		Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &errOut,
		Getenv: func(k string) string { return env[k] },
	})
	return result{code, out.String(), errOut.String()}
}

var idPattern = regexp.MustCompile(`dlg_[0-9a-z]{26}`)

func TestDelegateListRevokeAudit(t *testing.T) {
	e := servertest.Start(t)
	sock := "-socket=" + e.LocalAddr
	env := map[string]string{cli.TokenEnv: e.AliceToken(t)}

	r := run(t, env, "", sock, "delegate", "-agent", servertest.Orchestrator.String(), "-scope", "campaigns:read,compliance:check", "-ttl", "30m", "-intent", "spring campaign")
	if r.code != 0 {
		t.Fatalf("delegate: %d %s", r.code, r.stderr)
	}
	id := idPattern.FindString(r.stdout)
	if id == "" || !strings.Contains(r.stdout, "campaigns:read compliance:check") || !strings.Contains(r.stdout, "active") {
		t.Fatalf("delegate output:\n%s", r.stdout)
	}

	// The token may come from standard input too.
	r = run(t, nil, e.AliceToken(t)+"\n", sock, "-o", "json", "delegate", "-token-file", "-", "-agent", servertest.Orchestrator.String(), "-scope", "campaigns:read")
	var created struct {
		ID     string   `json:"id"`
		Scopes []string `json:"scopes"`
	}
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &created) != nil || created.ID == "" || created.Scopes[0] != "campaigns:read" {
		t.Fatalf("delegate -o json: %d %s %s", r.code, r.stdout, r.stderr)
	}

	r = run(t, nil, "", sock, "list", "-state", "active")
	if r.code != 0 || !strings.Contains(r.stdout, id) || !strings.Contains(r.stdout, created.ID) {
		t.Fatalf("list: %d %s %s", r.code, r.stdout, r.stderr)
	}
	r = run(t, nil, "", sock, "revoke", "-reason", "done", id)
	if r.code != 0 || r.stdout != "revoked 1 delegation(s): "+id+"\n" {
		t.Fatalf("revoke: %d %q %s", r.code, r.stdout, r.stderr)
	}
	r = run(t, nil, "", sock, "get", id)
	if r.code != 0 || !strings.Contains(r.stdout, "revoked") {
		t.Fatalf("get: %d %s %s", r.code, r.stdout, r.stderr)
	}
	r = run(t, nil, "", sock, "agents")
	if r.code != 0 || !strings.Contains(r.stdout, "market-analysis") || !strings.Contains(r.stdout, "pending") {
		t.Fatalf("agents: %d %s %s", r.code, r.stdout, r.stderr)
	}

	// Export, verify offline, then tamper with one event and see it named.
	r = run(t, nil, "", sock, "audit", "export")
	if r.code != 0 || strings.Count(r.stdout, "\n") != 3 {
		t.Fatalf("audit export: %d %q %s", r.code, r.stdout, r.stderr)
	}
	file := filepath.Join(t.TempDir(), "audit.jsonl")
	if err := os.WriteFile(file, []byte(r.stdout), 0o600); err != nil {
		t.Fatal(err)
	}
	v := run(t, nil, "", "audit", "verify", file)
	if v.code != 0 || !strings.HasPrefix(v.stdout, "ok: 3 events, chain intact; head 3:") {
		t.Fatalf("audit verify: %d %q %s", v.code, v.stdout, v.stderr)
	}
	// An incremental archive: the events after the first, verified from
	// the first's anchor (the head an earlier verify printed).
	lines := strings.SplitAfter(r.stdout, "\n")
	first := run(t, nil, lines[0], "audit", "verify")
	anchor := strings.TrimSuffix(strings.TrimPrefix(first.stdout, "ok: 1 events, chain intact; head "), "\n")
	r2 := run(t, nil, "", sock, "audit", "export", "-after", "1")
	if r2.code != 0 || r2.stdout != lines[1]+lines[2] {
		t.Fatalf("audit export -after 1: %d %q %s", r2.code, r2.stdout, r2.stderr)
	}
	v = run(t, nil, r2.stdout, "audit", "verify", "-from", anchor)
	if v.code != 0 || !strings.HasPrefix(v.stdout, "ok: 2 events, chain intact; head 3:") {
		t.Fatalf("audit verify -from %s: %d %q %s", anchor, v.code, v.stdout, v.stderr)
	}
	v = run(t, nil, r2.stdout, "audit", "verify")
	if v.code != 1 || v.stderr != "agentid: standard input: audit: chain broken at sequence 2: first event has sequence 2, expected 1\n" {
		t.Fatalf("audit verify without -from: %d %q", v.code, v.stderr)
	}
	wrong := "1:" + strings.Repeat("0", 64)
	v = run(t, nil, r2.stdout, "audit", "verify", "-from", wrong)
	if v.code != 1 || v.stderr != "agentid: standard input: audit: chain broken at sequence 2: first event's prev-hash does not match the anchor\n" {
		t.Fatalf("audit verify -from a wrong anchor: %d %q", v.code, v.stderr)
	}

	tampered := strings.Replace(r.stdout, `"campaigns:read compliance:check"`, `"campaigns:read compliance:check crm:write"`, 1)
	if tampered == r.stdout {
		t.Fatal("fixture: nothing to tamper with")
	}
	v = run(t, nil, tampered, "audit", "verify")
	if v.code != 1 || v.stderr != "agentid: standard input: audit: chain broken at sequence 1: hash mismatch (event edited)\n" {
		t.Fatalf("tampered verify: %d %q", v.code, v.stderr)
	}
}

func TestUsageErrors(t *testing.T) {
	tests := []struct {
		args   []string
		stderr string
	}{
		{[]string{"delegate", "-token", "abc"}, "agentid: flag provided but not defined: -token\n"},
		{[]string{"delegate", "-agent", "spiffe://example.org/a", "-scope", "x"}, "agentid: a user token is required: -token-file PATH, -token-file - (stdin) or $AGENTID_USER_TOKEN\n"},
		{[]string{"revoke"}, "agentid: revoke: exactly one delegation id is required\n"},
		{[]string{"-o", "yaml", "list"}, "agentid: -o must be table or json\n"},
		{[]string{"frobnicate"}, "agentid: unknown command \"frobnicate\"\n"},
	}
	for _, tt := range tests {
		r := run(t, nil, "", tt.args...)
		if r.code != 2 || !strings.HasSuffix(r.stderr, tt.stderr) {
			t.Errorf("%v: code %d stderr %q, want 2 %q", tt.args, r.code, r.stderr, tt.stderr)
		}
	}
}

func TestServerErrorsAreReadable(t *testing.T) {
	e := servertest.Start(t)
	r := run(t, map[string]string{cli.TokenEnv: "not.a.token"}, "", "-socket="+e.LocalAddr, "delegate", "-agent", servertest.Orchestrator.String(), "-scope", "campaigns:read")
	if r.code != 1 || r.stderr != "agentid: delegate: unauthenticated: oidcauth: invalid user token\n" {
		t.Fatalf("code %d stderr %q", r.code, r.stderr)
	}
	if strings.Contains(r.stderr, "not.a.token") {
		t.Fatal("the token was echoed")
	}
}

func TestTokenInspect(t *testing.T) {
	user, _ := delegation.NewUser("https://idp.example.com", "alice", "alice@example.com")
	d, err := delegation.NewRoot(delegation.RootParams{Agent: servertest.Orchestrator, User: user, MaxDepth: 1,
		Scopes:    delegation.MustParseScopes("campaigns:read"),
		ID:        delegation.MustParseID("dlg_01jd0000000000000000000000"),
		CreatedAt: time.Unix(1767225000, 0), ExpiresAt: time.Unix(1767225600, 0)})
	if err != nil {
		t.Fatal(err)
	}
	payload := claims.FromDelegation(d).Map()
	payload["sub"], payload["aud"], payload["exp"] = servertest.Orchestrator.String(), []string{"spiffe://example.org/svc/crm"}, 1767225300
	b, _ := json.Marshal(payload)
	token := "eyJhbGciOiJFUzI1NiJ9." + base64.RawURLEncoding.EncodeToString(b) + ".c2ln"
	r := run(t, nil, token, "token", "inspect")
	want := "agent               spiffe://example.org/agent/orchestrator\n" +
		"audience            [\"spiffe://example.org/svc/crm\"]\n" +
		"token expires       2025-12-31T23:55:00Z\n" +
		"user                alice (https://idp.example.com)\n" +
		"email               alice@example.com\n" +
		"scopes              campaigns:read\n" +
		"delegation          dlg_01jd0000000000000000000000 (root dlg_01jd0000000000000000000000)\n" +
		"chain               spiffe://example.org/agent/orchestrator\n" +
		"delegation expires  2026-01-01T00:00:00Z\n" +
		"signature           NOT CHECKED (inspect only)\n"
	if r.code != 0 || r.stdout != want {
		t.Fatalf("code %d stderr %q\n got:\n%s\nwant:\n%s", r.code, r.stderr, r.stdout, want)
	}
	r = run(t, nil, "a.b", "token", "inspect")
	if r.code != 1 || r.stderr != "agentid: token inspect: not a compact JWT (want three dot-separated parts)\n" {
		t.Fatalf("bad token: %d %q", r.code, r.stderr)
	}
}

// TestAuditArchiveThenPrune is the retention workflow: archive, verify,
// prune through the verified head, and the next export starts after it,
// says so on stderr and verifies with -from.
func TestAuditArchiveThenPrune(t *testing.T) {
	e := servertest.Start(t)
	sock := "-socket=" + e.LocalAddr
	env := map[string]string{cli.TokenEnv: e.AliceToken(t)}
	for range 3 {
		if r := run(t, env, "", sock, "delegate", "-agent", servertest.Orchestrator.String(), "-scope", "campaigns:read"); r.code != 0 {
			t.Fatalf("delegate: %d %s", r.code, r.stderr)
		}
	}
	r := run(t, nil, "", sock, "audit", "export")
	if r.code != 0 || r.stderr != "" || strings.Count(r.stdout, "\n") != 3 {
		t.Fatalf("audit export: %d %q %q", r.code, r.stdout, r.stderr)
	}
	v := run(t, nil, r.stdout, "audit", "verify")
	if v.code != 0 || !strings.HasPrefix(v.stdout, "ok: 3 events, chain intact; head 3:") {
		t.Fatalf("audit verify: %d %q %s", v.code, v.stdout, v.stderr)
	}
	head := strings.TrimSuffix(strings.TrimPrefix(v.stdout, "ok: 3 events, chain intact; head "), "\n")

	// Refusals: a malformed anchor, none, and one that is not this log's.
	wrong := "3:" + strings.Repeat("0", 64)
	for _, tt := range []struct {
		args   []string
		code   int
		stderr string
	}{
		{[]string{"audit", "prune"}, 2, "agentid: audit prune: -through <sequence>:<hash> is required\n"},
		{[]string{"audit", "prune", "-through", "3"}, 2, "agentid: -through: audit: invalid anchor: want <sequence>:<hash>\n"},
		{[]string{"audit", "prune", "-through", head, "extra"}, 2, "agentid: audit prune: unexpected argument \"extra\"\n"},
		{[]string{"audit", "prune", "-through", wrong}, 1, "agentid: audit prune: failedprecondition: store: anchor does not match the audit log: event 3 has hash " +
			strings.TrimPrefix(head, "3:") + ", not " + strings.Repeat("0", 64) + "\n"},
	} {
		r := run(t, nil, "", append([]string{sock}, tt.args...)...)
		if r.code != tt.code || r.stderr != tt.stderr || r.stdout != "" {
			t.Errorf("%v: %d %q %q; want %d %q", tt.args, r.code, r.stdout, r.stderr, tt.code, tt.stderr)
		}
	}

	p := run(t, nil, "", sock, "audit", "prune", "-through", head)
	if p.code != 0 || p.stdout != "pruned 3 events; the log now starts after "+head+"\n" {
		t.Fatalf("audit prune: %d %q %q", p.code, p.stdout, p.stderr)
	}
	r = run(t, nil, "", sock, "audit", "export")
	if r.code != 0 || r.stderr != "agentid: the log starts after "+head+"; verify with -from "+head+"\n" ||
		strings.Count(r.stdout, "\n") != 1 || !strings.Contains(r.stdout, `"type":"audit_pruned"`) {
		t.Fatalf("audit export after the prune: %d %q %q", r.code, r.stdout, r.stderr)
	}
	v = run(t, nil, r.stdout, "audit", "verify", "-from", head)
	if v.code != 0 || !strings.HasPrefix(v.stdout, "ok: 1 events, chain intact; head 4:") {
		t.Fatalf("audit verify -from the base: %d %q %s", v.code, v.stdout, v.stderr)
	}
	// Continuing from the base, as an incremental archive does, is not
	// news: nothing on stderr.
	r = run(t, nil, "", sock, "audit", "export", "-after", "3")
	if r.code != 0 || r.stderr != "" || strings.Count(r.stdout, "\n") != 1 {
		t.Fatalf("audit export -after the base: %d %q %q", r.code, r.stdout, r.stderr)
	}
}
