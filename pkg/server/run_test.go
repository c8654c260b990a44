package server

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentid/agentid/pkg/agent"
	"github.com/agentid/agentid/pkg/delegation"
	"github.com/agentid/agentid/pkg/server/config"
	"github.com/agentid/agentid/pkg/spireapi"
	"github.com/agentid/agentid/pkg/spireapi/spireapitest"
	agentv1 "github.com/agentid/agentid/proto/agentid/agent/v1"
	"github.com/sirupsen/logrus"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffegrpc/grpccredentials"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

var (
	runTD    = spiffeid.RequireTrustDomainFromString("example.org")
	runAgent = spiffeid.RequireFromString("spiffe://example.org/agent/writer")
	runAdmin = spiffeid.RequireFromString("spiffe://example.org/ops/admin")
)

// freeAddr returns a loopback address nothing listens on (the port is
// released before Run takes it; nothing else on the host races for it in
// practice).
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// shortDir is a temp dir with a path short enough for a unix socket.
func shortDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "aid")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func runConfig(t *testing.T, spire *spireapitest.Server) *config.Config {
	t.Helper()
	dir := shortDir(t)
	return &config.Config{
		TrustDomain:       runTD,
		StorePath:         filepath.Join(dir, "agentid.db"),
		AdminSocket:       spire.SocketPath(),
		ServerID:          spiffeid.RequireFromString("spiffe://example.org/agentid-server"),
		EntryPrefix:       config.DefaultEntryPrefix,
		SelectorType:      config.DefaultSelectorType,
		ReconcileInterval: time.Hour,
		GRPCAddr:          freeAddr(t),
		LocalSocket:       filepath.Join(dir, "agentid.sock"),
		HTTPAddr:          freeAddr(t),
		Issuers:           []config.Issuer{{URL: "https://idp.invalid", Audiences: []string{"agentid"}, GroupsClaim: "groups"}},
		Rules:             []config.Rule{{Name: "all", When: "true", Scopes: []string{"crm:read"}, MaxTTL: time.Hour, MaxDepth: 1}},
		Agents: []agent.Agent{{Name: "writer", SPIFFEID: runAgent, ParentID: spiffeid.RequireFromString("spiffe://example.org/spire/agent/node1"),
			Selectors: []agent.Selector{{Type: "aiagent", Value: "name:writer"}}, ScopeCeiling: delegation.MustParseScopes("crm:read"),
			X509SVIDTTL: time.Hour, JWTSVIDTTL: 5 * time.Minute}},
		Admins: []spiffeid.ID{runAdmin},
	}
}

// syncBuffer is a log sink safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func testLog(out io.Writer) *logrus.Logger {
	l := logrus.New()
	l.Out = out
	l.Formatter = &logrus.JSONFormatter{}
	return l
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestRun starts agentid-server on a fake SPIRE: it mints its identity,
// registers the declared agent's entry, serves the local socket, mTLS and
// the health listener, and stops cleanly when its context ends.
func TestRun(t *testing.T) {
	spire := spireapitest.New(t, runTD)
	cfg := runConfig(t, spire)
	var logs syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg, testLog(&logs)) }()

	// The reconciler's first pass creates the agent's entry.
	waitFor(t, "the agent's entry", func() bool {
		for _, e := range spire.Entries() {
			if e.GetSpiffeId().GetPath() == runAgent.Path() {
				return true
			}
		}
		return false
	})

	// The local socket: an admin, mode 0660.
	waitFor(t, "the local socket", func() bool { _, err := os.Stat(cfg.LocalSocket); return err == nil })
	if fi, err := os.Stat(cfg.LocalSocket); err != nil || fi.Mode().Perm() != 0o660 {
		t.Fatalf("local socket: %v, %v; want mode 0660", fi.Mode(), err)
	}
	conn, err := grpc.NewClient("unix://"+cfg.LocalSocket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	agents := agentv1.NewAgentServiceClient(conn)
	waitFor(t, "the agent synced", func() bool {
		resp, err := agents.GetAgent(ctx, &agentv1.GetAgentRequest{Key: &agentv1.GetAgentRequest_Name{Name: "writer"}})
		return err == nil && resp.Agent.SyncState == agentv1.SyncState_SYNC_STATE_SYNCED && resp.Agent.EntryId != ""
	})

	// mTLS with an SVID from the same SPIRE: the server presents its minted
	// identity; an admin reads agents, a stranger may not.
	client, err := spireapi.Dial(ctx, spire.SocketPath())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	bundle, err := client.GetX509Bundle(ctx, runTD)
	if err != nil {
		t.Fatal(err)
	}
	for id, want := range map[spiffeid.ID]codes.Code{runAdmin: codes.OK, spiffeid.RequireFromString("spiffe://example.org/app/stranger"): codes.PermissionDenied} {
		c := mtlsAgents(t, ctx, client, bundle, id, cfg.GRPCAddr, cfg.ServerID)
		_, err := c.ListAgents(ctx, &agentv1.ListAgentsRequest{})
		if status.Code(err) != want {
			t.Fatalf("ListAgents over mTLS as %s = %v, want %s", id, err, want)
		}
	}

	// The health listener.
	for path, want := range map[string]string{"/healthz": "ok\n", "/readyz": "ok\n"} {
		body, code := get(t, "http://"+cfg.HTTPAddr+path)
		if code != http.StatusOK || body != want {
			t.Fatalf("GET %s = %d %q", path, code, body)
		}
	}
	if body, code := get(t, "http://"+cfg.HTTPAddr+"/metrics"); code != http.StatusOK ||
		!strings.Contains(body, "agentid_grpc_requests_total") || !strings.Contains(body, "agentid_reconcile_runs_total") ||
		!strings.Contains(body, "agentid_delegations_purged_total") || !strings.Contains(body, "go_goroutines") {
		t.Fatalf("GET /metrics = %d, missing series:\n%s", code, body)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run = %v, want nil when its context ends", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not stop")
	}
	for _, want := range []string{"agentid-server started", "agentid-server stopped"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, logs.String())
		}
	}
}

func get(t *testing.T, url string) (string, int) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b), resp.StatusCode
}

func mtlsAgents(t *testing.T, ctx context.Context, minter *spireapi.Client, bundle *x509bundle.Bundle, id spiffeid.ID, addr string, serverID spiffeid.ID) agentv1.AgentServiceClient {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	svid, err := minter.MintX509SVID(ctx, id, key, 0)
	if err != nil {
		t.Fatal(err)
	}
	creds := grpccredentials.MTLSClientCredentials(staticSVID{svid}, bundle, tlsconfig.AuthorizeID(serverID))
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return agentv1.NewAgentServiceClient(conn)
}

type staticSVID struct{ svid *x509svid.SVID }

func (s staticSVID) GetX509SVID() (*x509svid.SVID, error) { return s.svid, nil }

// TestRunRefuses: every dependency is checked before the first request; a
// missing one stops start-up with an error that says which.
func TestRunRefuses(t *testing.T) {
	spire := spireapitest.New(t, runTD)
	tests := []struct {
		name string
		mut  func(*config.Config)
		want string
	}{
		{"store", func(c *config.Config) { c.StorePath = filepath.Join(shortDir(t), "missing", "agentid.db") }, "failed to open store: "},
		{"policy", func(c *config.Config) { c.Rules[0].When = "user.nope(" }, "policy: "},
		{"listener", func(c *config.Config) { c.LocalSocket = filepath.Join(shortDir(t), "missing", "agentid.sock") }, "failed to listen on "},
		{"tcp listener", func(c *config.Config) { c.GRPCAddr = "256.0.0.1:1" }, "failed to listen on 256.0.0.1:1"},
		{"http listener", func(c *config.Config) { c.HTTPAddr = "256.0.0.1:1" }, "failed to listen on 256.0.0.1:1"},
		{"oauth listener", func(c *config.Config) {
			c.OAuth = &config.OAuth{Addr: "256.0.0.1:1", Issuer: "https://agentid.example.com", MaxTokenTTL: time.Minute,
				Resources: []config.OAuthResource{{URI: "https://mcp.example.com/mcp", Scopes: delegation.MustParseScopes("crm:read")}}}
		}, "oauth: failed to listen on 256.0.0.1:1"},
		{"identity", func(c *config.Config) { c.ServerID = spiffeid.RequireFromString("spiffe://other.org/agentid-server") }, "x509source: failed to mint X509-SVID for spiffe://other.org/agentid-server"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := runConfig(t, spire)
			tt.mut(cfg)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			err := Run(ctx, cfg, testLog(io.Discard))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Run = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}
