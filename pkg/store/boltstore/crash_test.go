package boltstore

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/agentid/agentid/pkg/audit"
	"github.com/agentid/agentid/pkg/delegation"
	"github.com/agentid/agentid/pkg/store"
)

// crashChildEnv, when set to a file path, turns TestCrashChild into the
// writer process of TestCrashRecovery.
const crashChildEnv = "AGENTID_BOLTSTORE_CRASH_CHILD"

// TestCrashRecovery kills a process that writes to the store with SIGKILL
// at random points, several times over the same file, and checks after
// each kill that every write the process saw acknowledged survived, that
// bbolt's consistency check and the store's Check pass (indexes, revision
// log, audit chain), and that the next process can carry on.
func TestCrashRecovery(t *testing.T) {
	if os.Getenv(crashChildEnv) != "" {
		t.Skip("running as the crash child")
	}
	rounds, maxRun := 6, 700*time.Millisecond
	if testing.Short() {
		rounds = 2
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, seed))
	path := filepath.Join(t.TempDir(), "agentid.db")

	var base audit.Anchor        // the audit base after the last round
	acked := map[string]bool{}   // created, by id
	revoked := map[string]bool{} // revoked, by id
	for round := range rounds {
		run := time.Duration(50+rng.IntN(int(maxRun/time.Millisecond)-50)) * time.Millisecond
		created, rev := crashRound(t, path, run)
		for _, id := range created {
			acked[id] = true
		}
		for _, id := range rev {
			revoked[id] = true
		}

		s, err := Open(path, Options{})
		if err != nil {
			t.Fatalf("round %d: reopen after SIGKILL: %v", round, err)
		}
		ctx := context.Background()
		for id := range acked {
			d, err := s.GetDelegation(ctx, delegation.MustParseID(id))
			if err != nil {
				t.Fatalf("round %d: acknowledged delegation %s: %v", round, id, err)
			}
			if revoked[id] && d.State != delegation.StateRevoked {
				t.Fatalf("round %d: acknowledged revocation of %s lost: %s", round, id, d.State)
			}
		}
		if err := s.Check(ctx); err != nil {
			t.Fatalf("round %d: check after SIGKILL: %v", round, err)
		}
		if base, err = s.AuditBase(ctx); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		t.Logf("round %d: killed after %s, %d creates and %d revocations acknowledged so far, audit log pruned through %d",
			round, run, len(acked), len(revoked), base.Sequence)
	}
	if len(acked) == 0 {
		t.Fatal("no write was acknowledged in any round: the test checked nothing")
	}
	if base.IsZero() {
		t.Fatal("the audit log was never pruned: the test checked no prune")
	}
}

// crashRound runs the writer process on path, kills it run after it is
// ready, and returns the ids it acknowledged as created and as revoked.
func crashRound(t *testing.T, path string, run time.Duration) (created, revoked []string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+path)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	var kill <-chan time.Time
	bound := time.After(30 * time.Second) // a failure bound, not a wait
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				// The scanner only sees complete lines: a line the kill
				// cut short was not an acknowledgement.
				if err := cmd.Wait(); err == nil || !isKilled(err) {
					t.Fatalf("writer process ended with %v before it was killed", err)
				}
				return created, revoked
			}
			switch kind, id, _ := strings.Cut(line, " "); kind {
			case "ready":
				kill = time.After(run)
			case "created":
				created = append(created, id)
			case "revoked":
				revoked = append(revoked, id)
			}
		case <-kill:
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			kill = nil
		case <-bound:
			_ = cmd.Process.Kill() // the timeout is the failure to report
			t.Fatal("writer process did not start or stop in time")
		}
	}
}

func isKilled(err error) bool {
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		return false
	}
	ws, ok := exit.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}

// TestCrashChild is the writer process: several goroutines create root
// delegations and sub-delegations and revoke some, and print each
// acknowledged write on its own line, while another prunes the audit log,
// until the parent kills the process.
func TestCrashChild(t *testing.T) {
	path := os.Getenv(crashChildEnv)
	if path == "" {
		t.Skip("helper process of TestCrashRecovery")
	}
	s, err := Open(path, Options{MaxBatchSize: 8})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	var mu sync.Mutex
	ack := func(kind string, id delegation.ID) {
		// One write per line, unbuffered: what the parent reads was
		// acknowledged before it was printed.
		mu.Lock()
		defer mu.Unlock()
		if _, err := os.Stdout.WriteString(kind + " " + id.String() + "\n"); err != nil {
			os.Exit(3)
		}
	}
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, "crash child:", err)
		os.Exit(4)
	}
	ctx := context.Background()
	sub := spiffeid.RequireFromString("spiffe://example.org/agent/sub")
	if _, err := os.Stdout.WriteString("ready\n"); err != nil {
		os.Exit(3)
	}
	// Small deletion chunks, so that kills land inside a prune's
	// deletion too: the reopened store must finish it (Open) and check.
	s.pruneChunk = 50
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			time.Sleep(20 * time.Millisecond)
			base, err1 := s.AuditBase(ctx)
			head, err2 := s.AuditHead(ctx)
			if err := errors.Join(err1, err2); err != nil {
				fail(err)
			}
			if head.Sequence-base.Sequence < 100 {
				continue
			}
			// Prune about half of what remains.
			evs, _, err := s.ListEvents(ctx, store.EventFilter{AfterSeq: base.Sequence + (head.Sequence-base.Sequence)/2}, store.Page{Size: 1})
			if err != nil || len(evs) != 1 {
				fail(fmt.Errorf("event after the middle: %d, %w", len(evs), err))
			}
			if _, err := s.PruneEvents(ctx, evs[0].Anchor(), audit.Event{Time: testT0, Type: audit.TypeAuditPruned, Actor: "local"}); err != nil {
				fail(err)
			}
		}
	})
	for w := range 8 {
		wg.Go(func() {
			for i := 0; ; i++ {
				root := newRoot(t)
				if _, err := s.CreateDelegation(ctx, root, createdEvent(root)); err != nil {
					fail(err)
				}
				ack("created", root.ID)
				if i%3 != w%3 {
					continue
				}
				child := newChild(t, root, sub)
				if _, err := s.CreateDelegation(ctx, child, audit.Event{Time: testT0, Type: audit.TypeSubDelegated, Actor: testAgent.String()}); err != nil {
					fail(err)
				}
				ack("created", child.ID)
				r := store.Revocation{ID: root.ID, At: testT0, Reason: "crash test",
					Event: audit.Event{Time: testT0, Type: audit.TypeRevoked, Actor: "local"}}
				if _, _, err := s.RevokeDelegation(ctx, r); err != nil {
					fail(err)
				}
				ack("revoked", root.ID)
				ack("revoked", child.ID)
			}
		})
	}
	wg.Wait()
}
