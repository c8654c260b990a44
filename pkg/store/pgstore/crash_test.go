package pgstore

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/agentid/agentid/pkg/audit"
	"github.com/agentid/agentid/pkg/delegation"
	"github.com/agentid/agentid/pkg/store"
	"github.com/agentid/agentid/pkg/store/pgstore/pgtest"
	"github.com/agentid/agentid/pkg/store/storetest"
)

// crashChildEnv, when set to a connection string, turns TestCrashChild
// into the writer process of TestCrashWriterKilled.
const crashChildEnv = "AGENTID_PGSTORE_CRASH_CHILD"

// acks collects the writes a workload saw acknowledged.
type acks struct {
	mu      sync.Mutex
	created map[string]bool
	revoked map[string]bool
}

func newAcks() *acks { return &acks{created: map[string]bool{}, revoked: map[string]bool{}} }

func (a *acks) add(kind, id string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	switch kind {
	case "created":
		a.created[id] = true
	case "revoked":
		a.revoked[id] = true
	}
}

// crashWorkload runs writers that create roots and sub-delegations and
// revoke some (a cascade of two), calling ack after each acknowledged write,
// until ctx ends. Groups form: the writers share transactions. A failed
// write is not acknowledged: onErr is told, then the writer goes on.
func crashWorkload(ctx context.Context, t testing.TB, s *Store, writers int, ack func(kind string, id delegation.ID), onErr func(error)) {
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), uint64(time.Now().UnixNano())))
			pause := func(err error) {
				onErr(err)
				select {
				case <-ctx.Done():
				case <-time.After(10 * time.Millisecond):
				}
			}
			for ctx.Err() == nil {
				root := newRoot(t, storetest.Agent(w))
				if _, err := s.CreateDelegation(ctx, root, createdEvent(root)); err != nil {
					pause(err)
					continue
				}
				ack("created", root.ID)
				if rng.IntN(3) != 0 {
					continue
				}
				child := newChild(t, root, storetest.Agent(100+w))
				if _, err := s.CreateDelegation(ctx, child, createdEvent(child)); err != nil {
					pause(err)
					continue
				}
				ack("created", child.ID)
				r := store.Revocation{ID: root.ID, At: storetest.T0, Reason: "crash test",
					Event: audit.Event{Time: storetest.T0, Type: audit.TypeRevoked, Actor: "local"}}
				ids, _, err := s.RevokeDelegation(ctx, r)
				if err != nil {
					pause(err)
					continue
				}
				for _, id := range ids {
					ack("revoked", id)
				}
			}
		})
	}
	wg.Wait()
}

// verifyCrash reopens the database and checks that every acknowledged
// create and revocation is there, that nothing is half-written (every
// delegation has its creation event, every revoked one its revocation
// event, every event of a delegation names a stored one) and that Check
// passes: revisions without gaps, the audit chain verified from base to
// head.
func verifyCrash(t *testing.T, dsn string, a *acks) {
	t.Helper()
	ctx := context.Background()
	s, err := Open(ctx, Config{ConnString: dsn})
	if err != nil {
		t.Fatalf("reopen after the crash: %v", err)
	}
	defer s.Close()
	for id := range a.created {
		d, err := s.GetDelegation(ctx, delegation.MustParseID(id))
		if err != nil {
			t.Fatalf("acknowledged delegation %s: %v", id, err)
		}
		if a.revoked[id] && d.State != delegation.StateRevoked {
			t.Fatalf("acknowledged revocation of %s lost: %s", id, d.State)
		}
	}
	if err := s.Check(ctx); err != nil {
		t.Fatalf("check after the crash: %v", err)
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for what, q := range map[string]string{
		"delegations without their creation event": fmt.Sprintf(`SELECT count(*) FROM agentid_delegations d WHERE NOT EXISTS
(SELECT 1 FROM agentid_events e WHERE e.delegation_id = d.id AND e.type IN (%d, %d))`, audit.TypeDelegationCreated, audit.TypeSubDelegated),
		"revoked delegations without their revocation event": fmt.Sprintf(`SELECT count(*) FROM agentid_delegations d WHERE d.state = %d AND NOT EXISTS
(SELECT 1 FROM agentid_events e WHERE e.delegation_id = d.id AND e.type = %d)`, delegation.StateRevoked, audit.TypeRevoked),
		"events naming no stored delegation": `SELECT count(*) FROM agentid_events e WHERE e.delegation_id IS NOT NULL AND NOT EXISTS
(SELECT 1 FROM agentid_delegations d WHERE d.id = e.delegation_id)`,
		"active children of revoked parents": fmt.Sprintf(`SELECT count(*) FROM agentid_delegations c JOIN agentid_delegations p ON c.parent_seq = p.seq
WHERE c.state = %d AND p.state = %d`, delegation.StateActive, delegation.StateRevoked),
	} {
		var n int
		if err := conn.QueryRow(ctx, q).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Errorf("%d %s", n, what)
		}
	}
}

// TestCrashPostgresKilled kills PostgreSQL with SIGKILL (postmaster and
// backends, no shutdown checkpoint) while 16 writers of this process
// commit in groups, starts it again (crash recovery from the WAL), and
// checks after each round that every write acknowledged before the kill
// survived and nothing is half-written.
func TestCrashPostgresKilled(t *testing.T) {
	pg := pgtest.Start(t)
	dsn := pg.NewDatabase(t)
	rounds := 3
	if testing.Short() {
		rounds = 1
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, seed))
	a := newAcks()
	for round := range rounds {
		s, err := Open(context.Background(), Config{ConnString: dsn, MaxBatchSize: 8, WriteTimeout: 5 * time.Second})
		if err != nil {
			t.Fatalf("round %d: open: %v", round, err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		before := len(a.created)
		go func() {
			defer close(done)
			// Every ack counts, one that races the kill too: PostgreSQL
			// committed it before it died, so it must survive.
			crashWorkload(ctx, t, s, 16, func(kind string, id delegation.ID) { a.add(kind, id.String()) }, func(error) {})
		}()
		time.Sleep(time.Duration(300+rng.IntN(700)) * time.Millisecond)
		if err := pg.Kill(); err != nil {
			t.Fatal(err)
		}
		// While it is down, writes fail with ErrUnavailable.
		root := newRoot(t, storetest.Agent(999))
		_, err = s.CreateDelegation(context.Background(), root, createdEvent(root))
		if !errors.Is(err, store.ErrUnavailable) {
			t.Errorf("round %d: create while PostgreSQL is down: %v, want store.ErrUnavailable", round, err)
		}
		cancel()
		<-done
		s.Close()
		if err := pg.Start(); err != nil {
			t.Fatalf("round %d: restart after SIGKILL: %v", round, err)
		}
		if len(a.created) == before {
			t.Fatalf("round %d: no write was acknowledged before the kill: the round checked nothing", round)
		}
		verifyCrash(t, dsn, a)
		t.Logf("round %d: %d creates, %d revocations acknowledged so far", round, len(a.created), len(a.revoked))
	}
}

// TestCrashWriterKilled kills the writing process (as agentid-server would
// be) with SIGKILL mid group commit, several times over one database: the
// transactions in flight die with its connections, every acknowledged
// write is there and the next process carries on.
func TestCrashWriterKilled(t *testing.T) {
	if os.Getenv(crashChildEnv) != "" {
		t.Skip("running as the crash child")
	}
	dsn := server(t).NewDatabase(t)
	rounds := 4
	if testing.Short() {
		rounds = 1
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, seed))
	a := newAcks()
	for round := range rounds {
		crashRound(t, dsn, time.Duration(200+rng.IntN(800))*time.Millisecond, a)
		if len(a.created) == 0 {
			t.Fatalf("round %d: no write was acknowledged: the round checked nothing", round)
		}
		verifyCrash(t, dsn, a)
		t.Logf("round %d: %d creates, %d revocations acknowledged so far", round, len(a.created), len(a.revoked))
	}
}

// crashRound runs the writer process on dsn, kills it run after it is
// ready, and adds what it acknowledged to a.
func crashRound(t *testing.T, dsn string, run time.Duration, a *acks) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+dsn)
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
	bound := time.After(60 * time.Second) // a failure bound, not a wait
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				// The scanner sees complete lines only: a line the kill
				// cut short was not an acknowledgement.
				var exit *exec.ExitError
				err := cmd.Wait()
				if ws, isWS := exitStatus(err, &exit); !isWS || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
					t.Fatalf("writer process ended with %v before it was killed", err)
				}
				return
			}
			kind, id, _ := strings.Cut(line, " ")
			if kind == "ready" {
				kill = time.After(run)
				continue
			}
			a.add(kind, id)
		case <-kill:
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			kill = nil
		case <-bound:
			_ = cmd.Process.Kill() // best effort: the test fails either way
			t.Fatal("writer process did not start or stop in time")
		}
	}
}

func exitStatus(err error, exit **exec.ExitError) (syscall.WaitStatus, bool) {
	if !errors.As(err, exit) {
		return 0, false
	}
	ws, ok := (*exit).Sys().(syscall.WaitStatus)
	return ws, ok
}

// TestCrashChild is the writer process of TestCrashWriterKilled: 16
// writers, each acknowledged write printed on its own line, until the
// parent kills it. A write that fails here is a test failure: the
// database stays up.
func TestCrashChild(t *testing.T) {
	dsn := os.Getenv(crashChildEnv)
	if dsn == "" {
		t.Skip("helper process of TestCrashWriterKilled")
	}
	s, err := Open(context.Background(), Config{ConnString: dsn, MaxBatchSize: 8})
	if err != nil {
		fmt.Fprintln(os.Stderr, "crash child:", err)
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
	if _, err := os.Stdout.WriteString("ready\n"); err != nil {
		os.Exit(3)
	}
	crashWorkload(context.Background(), t, s, 16, ack, func(err error) {
		fmt.Fprintln(os.Stderr, "crash child:", err)
		os.Exit(4)
	})
}
