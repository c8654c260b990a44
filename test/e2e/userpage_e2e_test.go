//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	delegationv1 "github.com/agentid/agentid/proto/agentid/delegation/v1"
	"github.com/agentid/agentid/test/e2e/stack"
)

// TestUserPageInBrowser drives agentid-server's user page in headless
// Chromium (Debian's chromium, test/tools/chromium.sh) on the real stack:
// alice signs in through Hydra's redirect flow and its login and consent
// pages, sees her orchestrator's delegation with its sub-delegation, a
// cross-site form post changes nothing, she revokes the root and the tree
// turns revoked, and the sub-agent's next call is refused. Bob, signed in,
// gets a 404 for alice's delegation by URL; Carol, an admin, sees it.
// Every page passes axe-core's WCAG 2.1 A/AA rules. Screenshots at desktop and
// phone widths go to test/artifacts/userpage (git-ignored).
func TestUserPageInBrowser(t *testing.T) {
	chromium := os.Getenv("AGENTID_CHROMIUM")
	if chromium == "" {
		var err error
		if chromium, err = exec.LookPath("chromium"); err != nil {
			t.Fatalf("chromium is not installed (test/tools/chromium.sh installs it): %v", err)
		}
	}
	st := stack.Start(t, stack.Options{UserPage: true})
	st.RegisterPageClient(t)
	st.WaitForEntries(t, entryTimeout)

	// The orchestrator acts for alice and sub-delegates to market-analysis.
	alice := st.Login(t, "alice", "alice@example.com", "marketing", "eu")
	_, stderr, err := st.Exec(t, st.WorkloadEnv(st.Manifest(t, "orchestrator")), st.Bin(t, "go-agent"),
		"-server-addr", st.ServerAddr, "-server-id", stack.ServerID.String(),
		"-service-url", st.ServiceURL(), "-service-id", stack.ServiceID.String(),
		"-user-token-file", alice.TokenFile, "-scopes", "campaigns:read compliance:check",
		"-ttl", "30m", "-intent", "check the Q3 campaign for GDPR issues", "-keep")
	if err != nil {
		t.Fatalf("go-agent: %v", err)
	}
	rootID := dlgPattern.FindString(stderr)
	out, err := st.CLIAs(t, st.Manifest(t, "orchestrator"), "-o", "json", "sub-delegate", "-parent", rootID,
		"-agent", stack.Analyst.String(), "-scope", "campaigns:read", "-ttl", "10m", "-intent", "pull the Q3 figures")
	if err != nil {
		t.Fatalf("sub-delegate: %v", err)
	}
	sub := stack.ParseDelegation(t, out)
	analyst := st.Manifest(t, "market-analysis")
	if r := st.Probe(t, analyst, "call", "-url", st.ServiceURL(), "-service-id", stack.ServiceID.String(), "-delegation", sub.Id); r.Code != "OK" || r.Status != http.StatusOK {
		t.Fatalf("market-analysis's call before the revoke: %+v", r)
	}

	artifacts := filepath.Join(st.RepoPath(t, "test"), "artifacts", "userpage")
	if err := os.MkdirAll(artifacts, 0o755); err != nil {
		t.Fatal(err)
	}
	browser := func(t *testing.T) (context.Context, context.CancelFunc) {
		opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium), chromedp.NoSandbox,
			chromedp.Flag("ignore-certificate-errors", true), chromedp.WindowSize(1280, 900))
		actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
		ctx, cancel := chromedp.NewContext(actx)
		ctx, tcancel := context.WithTimeout(ctx, 3*time.Minute)
		return ctx, func() { tcancel(); cancel(); acancel() }
	}
	body := func(t *testing.T, ctx context.Context) string {
		t.Helper()
		html, err := chromedp.Run(ctx, chromedp.OuterHTML("body"))
		if err != nil {
			t.Fatal(err)
		}
		return html
	}
	signIn := func(t *testing.T, ctx context.Context, user, target string) {
		t.Helper()
		if err := chromedp.Do(ctx,
			chromedp.Navigate(st.PageURL+target),
			chromedp.WaitVisible("#username"),
			chromedp.SendKeys("#username", user),
			chromedp.SendKeys("#password", stack.WebUsers[user].Password),
		); err != nil {
			t.Fatalf("%s at the login page: %v", user, err)
		}
		click(t, ctx, "#signin")
		click(t, ctx, "#allow")
	}
	axeJS, err := os.ReadFile(st.RepoPath(t, "test/tools/axe/node_modules/axe-core/axe.min.js"))
	if err != nil {
		t.Fatalf("axe-core is not installed (test/tools/axe.sh installs it): %v", err)
	}
	shoot := func(t *testing.T, ctx context.Context, name string) {
		t.Helper()
		checkAccessible(t, ctx, name, string(axeJS))
		for _, w := range []struct {
			suffix        string
			width, height int64
		}{{"desktop", 1280, 900}, {"phone", 375, 812}} {
			if err := chromedp.Do(ctx, chromedp.EmulateViewport(w.width, w.height)); err != nil {
				t.Fatal(err)
			}
			png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(artifacts, name+"-"+w.suffix+".png"), png, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 900)); err != nil {
			t.Fatal(err)
		}
	}
	state := func(t *testing.T, id string) delegationv1.State {
		t.Helper()
		out, err := st.CLI(t, nil, "-o", "json", "get", id)
		if err != nil {
			t.Fatal(err)
		}
		return stack.ParseDelegation(t, out).State
	}

	ctx, done := browser(t)
	defer done()
	signIn(t, ctx, "alice", "/delegations")
	html := body(t, ctx)
	for _, want := range []string{"alice@example.com", rootID, sub.Id, "orchestrator", "market-analysis", "check the Q3 campaign for GDPR issues", `<ul class="children">`} {
		if !strings.Contains(html, want) {
			t.Fatalf("alice's delegations page lacks %q:\n%s", want, html)
		}
	}
	shoot(t, ctx, "delegations")

	// A form on another origin posting to the page: no CSRF token, nothing
	// changes.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	evil := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `<!doctype html><form method="post" action="%s/delegations/%s/revoke"><input type="hidden" name="reason" value="pwned"><button id="go">Win a prize</button></form>`, st.PageURL, rootID)
	})}
	go evil.Serve(l)
	defer evil.Close()
	if err := chromedp.Do(ctx, chromedp.Navigate("http://"+l.Addr().String()+"/")); err != nil {
		t.Fatalf("the other site: %v", err)
	}
	click(t, ctx, "#go")
	if html := body(t, ctx); !strings.Contains(html, "nothing was changed") {
		t.Fatalf("cross-site post answered:\n%s", html)
	}
	if s := state(t, rootID); s != delegationv1.State_STATE_ACTIVE {
		t.Fatalf("cross-site post changed the delegation: %s", s)
	}

	// The story, then the revoke with its cascade shown and one confirmation.
	if err := chromedp.Do(ctx, chromedp.Navigate(st.PageURL+"/delegations/"+rootID), chromedp.WaitVisible("table")); err != nil {
		t.Fatal(err)
	}
	if html := body(t, ctx); !strings.Contains(html, "Delegated to orchestrator") || !strings.Contains(html, "Sub-delegated to market-analysis") ||
		!strings.Contains(html, "hash chain is intact") {
		t.Fatalf("story:\n%s", html)
	}
	shoot(t, ctx, "story")
	click(t, ctx, "a.danger")
	if html := body(t, ctx); !strings.Contains(html, "This revokes 2 delegations:") {
		t.Fatalf("confirmation:\n%s", html)
	}
	shoot(t, ctx, "revoke")
	if err := chromedp.Do(ctx, chromedp.SendKeys("#reason", "review done")); err != nil {
		t.Fatal(err)
	}
	click(t, ctx, "button.danger")
	if html := body(t, ctx); strings.Count(html, `<span class="badge revoked">revoked</span>`) != 2 {
		t.Fatalf("after the revoke the tree is not revoked:\n%s", html)
	}
	for _, id := range []string{rootID, sub.Id} {
		if s := state(t, id); s != delegationv1.State_STATE_REVOKED {
			t.Fatalf("%s is %s after the revoke", id, s)
		}
	}
	r := st.WaitProbe(t, "market-analysis refused after the revoke", propagationTimeout,
		func(r stack.ProbeResult) bool { return r.Code != "OK" || r.Status != http.StatusOK },
		analyst, "call", "-url", st.ServiceURL(), "-service-id", stack.ServiceID.String(), "-delegation", sub.Id)
	t.Logf("market-analysis after the revoke: code %s status %d %s", r.Code, r.Status, r.Message)

	// Bob, in a browser of his own, cannot see alice's delegation by URL.
	bctx, bdone := browser(t)
	defer bdone()
	signIn(t, bctx, "bob", "/delegations/"+rootID)
	title, err := chromedp.Run(bctx, chromedp.Title())
	if err != nil {
		t.Fatal(err)
	}
	if html := body(t, bctx); title != "Not found · agentid" || strings.Contains(html, "orchestrator") || strings.Contains(html, "alice") {
		t.Fatalf("bob at alice's delegation: %q\n%s", title, html)
	}
	shoot(t, bctx, "not-found")

	// Carol, in the admins' group, sees alice's tree.
	cctx, cdone := browser(t)
	defer cdone()
	signIn(t, cctx, "carol", "/delegations")
	if html := body(t, cctx); !strings.Contains(html, rootID) || !strings.Contains(html, sub.Id) || !strings.Contains(html, ">admin<") ||
		!strings.Contains(html, "of every user") {
		t.Fatalf("carol, an admin, does not see alice's delegations:\n%s", html)
	}
	shoot(t, cctx, "admin")
}

// checkAccessible runs axe-core's WCAG 2 A and AA rules in the page (the
// DevTools evaluation is not bound by the page's CSP, which allows no
// script) and fails on any violation.
func checkAccessible(t *testing.T, ctx context.Context, name, axeJS string) {
	t.Helper()
	if _, err := chromedp.Run(ctx, chromedp.EvaluateAsDevTools[any](axeJS)); err != nil {
		t.Fatalf("%s: loading axe-core: %v", name, err)
	}
	report, err := chromedp.Run(ctx, chromedp.EvaluateAsDevTools[string](
		`axe.run(document, {runOnly: {type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]}}).then(r => JSON.stringify(r.violations.map(v => ({id: v.id, impact: v.impact, nodes: v.nodes.map(n => n.html)}))))`,
		chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("%s: running axe-core: %v", name, err)
	}
	if report != "[]" {
		t.Errorf("%s: accessibility violations (axe-core): %s", name, report)
	}
}

// click clicks the element sel selects and waits for the page the click
// leads to (through any redirects) to load.
func click(t *testing.T, ctx context.Context, sel string) {
	t.Helper()
	if _, err := chromedp.Run(ctx, chromedp.WaitEvent(page.LoadEventFired, nil, chromedp.Click(sel))); err != nil {
		t.Fatalf("clicking %s: %v", sel, err)
	}
}
