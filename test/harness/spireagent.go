package harness

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// AgentOptions configures StartSPIREAgent. The zero value is an agent with
// the built-in unix workload attestor only.
type AgentOptions struct {
	// SyncInterval is experimental.sync_interval; zero gives
	// DefaultSyncInterval.
	SyncInterval time.Duration
	// WorkloadAttestor, when set, is loaded as an external WorkloadAttestor
	// beside the built-in unix one.
	WorkloadAttestor *ExternalPlugin
	// LogLevel defaults to "DEBUG" (the log is printed only on failure).
	LogLevel string
}

// SPIREAgent is a running spire-agent attested to a SPIREServer with a join
// token, serving the Workload API on a unix socket. It is stopped when the
// test ends.
type SPIREAgent struct {
	proc           *process
	id             spiffeid.ID
	workloadSocket string
}

// StartSPIREAgent creates a join token on srv, starts spire-agent with it
// (trusting srv's current bundle) and waits until the Workload API answers.
func StartSPIREAgent(t testing.TB, srv *SPIREServer, opts AgentOptions) *SPIREAgent {
	t.Helper()
	if opts.SyncInterval == 0 {
		opts.SyncInterval = DefaultSyncInterval
	}
	if opts.LogLevel == "" {
		opts.LogLevel = "DEBUG"
	}
	bin := tool(t, toolSPIRE, "spire-agent")

	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	bundlePath := filepath.Join(dir, "bundle.pem")
	if err := os.WriteFile(bundlePath, srv.BundlePEM(t), 0o600); err != nil {
		t.Fatalf("harness: write agent bundle: %v", err)
	}
	token := srv.CreateJoinToken(t)
	id, err := spiffeid.FromSegments(srv.TrustDomain(), "spire", "agent", "join_token", token)
	if err != nil {
		t.Fatalf("harness: agent id: %v", err)
	}
	a := &SPIREAgent{
		id:             id,
		workloadSocket: filepath.Join(socketDir(t), "agent.sock"),
	}
	conf, err := a.config(opts, srv, dataDir, bundlePath, token)
	if err != nil {
		t.Fatal(err)
	}
	confPath := filepath.Join(dir, "agent.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		t.Fatalf("harness: write agent config: %v", err)
	}
	a.proc = newProcess(t, "spire-agent", bin, dir, dir, "run", "-config", confPath)
	a.start(t)
	return a
}

func (a *SPIREAgent) config(opts AgentOptions, srv *SPIREServer, dataDir, bundlePath, token string) (string, error) {
	var b strings.Builder
	b.WriteString("agent {\n")
	fmt.Fprintf(&b, "  data_dir = %s\n", hclString(dataDir))
	fmt.Fprintf(&b, "  log_level = %s\n", hclString(opts.LogLevel))
	fmt.Fprintf(&b, "  server_address = %s\n", hclString("127.0.0.1"))
	fmt.Fprintf(&b, "  server_port = %d\n", srv.bindPort)
	fmt.Fprintf(&b, "  socket_path = %s\n", hclString(a.workloadSocket))
	fmt.Fprintf(&b, "  trust_domain = %s\n", hclString(srv.TrustDomain().Name()))
	fmt.Fprintf(&b, "  trust_bundle_path = %s\n", hclString(bundlePath))
	// Used once: a restarted agent reattests with the SVID in data_dir.
	fmt.Fprintf(&b, "  join_token = %s\n", hclString(token))
	fmt.Fprintf(&b, "  experimental {\n    sync_interval = %s\n  }\n", hclDuration(opts.SyncInterval))
	b.WriteString("}\n\nplugins {\n")
	b.WriteString("  NodeAttestor \"join_token\" {\n    plugin_data {}\n  }\n")
	fmt.Fprintf(&b, "  KeyManager \"disk\" {\n    plugin_data {\n      directory = %s\n    }\n  }\n", hclString(dataDir))
	b.WriteString("  WorkloadAttestor \"unix\" {\n    plugin_data {}\n  }\n")
	if opts.WorkloadAttestor != nil {
		if opts.WorkloadAttestor.Name == "unix" {
			return "", fmt.Errorf("harness: workload attestor name %q is the built-in one", "unix")
		}
		p, err := opts.WorkloadAttestor.hcl("WorkloadAttestor")
		if err != nil {
			return "", err
		}
		b.WriteString(p)
	}
	b.WriteString("}\n")
	return b.String(), nil
}

func (a *SPIREAgent) start(t testing.TB) {
	t.Helper()
	a.proc.start(t)
	waitReady(t, a.proc, "spire-agent Workload API", startTimeout, a.serving)
}

// serving reports whether the Workload API answers. A caller without
// entries gets PermissionDenied ("no identity issued"), which also means
// the agent attested and serves, as `spire-agent healthcheck` reads it.
func (a *SPIREAgent) serving() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, err := workloadapi.FetchX509SVIDs(ctx, workloadapi.WithAddr(a.WorkloadAddr()))
	if err == nil || status.Code(err) == codes.PermissionDenied {
		return nil
	}
	return err
}

// ID is the agent's SPIFFE ID, spiffe://<td>/spire/agent/join_token/<token>:
// the parent ID of entries for workloads on this agent.
func (a *SPIREAgent) ID() spiffeid.ID { return a.id }

// WorkloadSocket is the path of the Workload API unix socket.
func (a *SPIREAgent) WorkloadSocket() string { return a.workloadSocket }

// WorkloadAddr is the Workload API address as go-spiffe takes it
// (workloadapi.WithAddr) and as SPIFFE_ENDPOINT_SOCKET holds it.
func (a *SPIREAgent) WorkloadAddr() string { return "unix://" + a.workloadSocket }

// LogPath is the file holding the agent's output.
func (a *SPIREAgent) LogPath() string { return a.proc.logPath }

// Pid is the spire-agent process id, 0 when stopped.
func (a *SPIREAgent) Pid() int { return a.proc.pid() }

// Stop terminates the agent and waits for it; Start runs it again.
func (a *SPIREAgent) Stop(t testing.TB) {
	t.Helper()
	a.proc.stop()
}

// Kill ends the agent with SIGKILL, as a crash would.
func (a *SPIREAgent) Kill(t testing.TB) {
	t.Helper()
	a.proc.kill()
}

// Start runs a stopped agent again; it reattests with the SVID kept in its
// data directory.
func (a *SPIREAgent) Start(t testing.TB) {
	t.Helper()
	a.start(t)
}

// Restart is Stop then Start.
func (a *SPIREAgent) Restart(t testing.TB) {
	t.Helper()
	a.Stop(t)
	a.Start(t)
}

// WaitForX509SVID polls the Workload API, as the calling process, until it
// is issued an X509-SVID for id, and returns it. It measures entry
// propagation: an entry created on the server reaches the agent within
// about one sync interval. It fails the test after timeout.
func (a *SPIREAgent) WaitForX509SVID(t testing.TB, id spiffeid.ID, timeout time.Duration) *x509svid.SVID {
	t.Helper()
	var found *x509svid.SVID
	waitReady(t, a.proc, "X509-SVID for "+id.String(), timeout, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		svids, err := workloadapi.FetchX509SVIDs(ctx, workloadapi.WithAddr(a.WorkloadAddr()))
		if err != nil {
			return err
		}
		for _, s := range svids {
			if s.ID == id {
				found = s
				return nil
			}
		}
		return errors.New("not among the caller's SVIDs yet")
	})
	return found
}
