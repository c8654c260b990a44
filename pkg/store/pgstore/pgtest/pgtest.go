// Package pgtest starts a throwaway PostgreSQL cluster for tests: initdb in
// a temporary directory, the server on a unix socket only, run as an
// unprivileged user (PostgreSQL refuses to run as root), fsync and
// synchronous_commit on as in production, stopped by its PID and removed at
// the test's cleanup, also when the test failed.
//
//	srv := pgtest.Start(t)
//	dsn := srv.NewDatabase(t) // an empty database of the test's own
//
// The binaries are Debian's (/usr/lib/postgresql/<version>/bin, the newest
// first), or those of $AGENTID_PG_BIN, or pg_config's bindir. When none is
// found the test is skipped, unless $CI is set: CI must run these tests, so
// there a missing PostgreSQL fails them (.ci/run installs it through
// test/tools/postgres.sh).
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Superuser is the name of the cluster's superuser.
const Superuser = "postgres"

// startBound bounds how long Start waits for the server to accept
// connections: a failure bound, not a wait.
const startBound = 60 * time.Second

// Server is a running throwaway cluster.
type Server struct {
	bin      string
	dir      string // owned by the server's user; holds data/ and the socket
	password string // the superuser's
	cred     *syscall.Credential

	mu  sync.Mutex
	cmd *exec.Cmd
	log *os.File
	dbs atomic.Int64
}

// Bin returns the directory of the PostgreSQL binaries, or "" when none is
// installed.
func Bin() string {
	if dir := os.Getenv("AGENTID_PG_BIN"); dir != "" {
		return dir
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(dirs, func(a, b string) int { return versionOf(b) - versionOf(a) })
	for _, d := range dirs {
		if isExec(filepath.Join(d, "postgres")) && isExec(filepath.Join(d, "initdb")) {
			return d
		}
	}
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		d := strings.TrimSpace(string(out))
		if isExec(filepath.Join(d, "postgres")) {
			return d
		}
	}
	return ""
}

func versionOf(dir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(dir)))
	return n
}

func isExec(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0
}

// Require skips t when PostgreSQL is not installed and $CI is not set, and
// fails it when $CI is set; it returns the directory of the binaries.
func Require(t testing.TB) string {
	t.Helper()
	bin := Bin()
	if bin != "" {
		return bin
	}
	if os.Getenv("CI") != "" {
		t.Fatal("pgtest: PostgreSQL is not installed, and CI must run this test: run test/tools/postgres.sh (apt-get install postgresql)")
	}
	t.Skip("pgtest: PostgreSQL is not installed (no /usr/lib/postgresql/*/bin, $AGENTID_PG_BIN or pg_config); test/tools/postgres.sh installs it")
	return ""
}

// Start initialises and starts a cluster, stopped and removed at t's
// cleanup.
func Start(t testing.TB) *Server {
	t.Helper()
	bin := Require(t)
	s, err := start(bin)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("pgtest: %v", err)
		}
	})
	return s
}

// New initialises and starts a cluster that the caller closes, for a
// package's TestMain to share one cluster among its tests. It fails when
// PostgreSQL is not installed; call Require from each test first.
func New() (*Server, error) {
	bin := Bin()
	if bin == "" {
		return nil, errors.New("PostgreSQL is not installed")
	}
	return start(bin)
}

func start(bin string) (*Server, error) {
	cred, uid, gid, err := serverUser()
	if err != nil {
		return nil, err
	}
	// A short directory of its own under /tmp: the socket's path must fit
	// in 107 bytes, and t.TempDir's parents are closed to other users.
	dir, err := os.MkdirTemp("", "agentid-pg-")
	if err != nil {
		return nil, err
	}
	s := &Server{bin: bin, dir: dir, cred: cred, password: randomHex(16)}
	fail := func(err error) (*Server, error) {
		os.RemoveAll(dir)
		return nil, err
	}
	if cred != nil {
		if err := os.Chown(dir, uid, gid); err != nil {
			return fail(err)
		}
	}
	pwfile := filepath.Join(dir, "pwfile")
	if err := os.WriteFile(pwfile, []byte(s.password+"\n"), 0o600); err != nil {
		return fail(err)
	}
	if cred != nil {
		if err := os.Chown(pwfile, uid, gid); err != nil {
			return fail(err)
		}
	}
	// Password authentication on the socket too, so that tests go through
	// the same path as a real deployment (and can get it wrong).
	// --no-sync skips only initdb's final flush of the new files; the
	// server itself runs with fsync on.
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", s.dataDir(), "-U", Superuser,
		"--pwfile", pwfile, "--auth", "scram-sha-256", "-E", "UTF8", "--locale", "C", "--no-sync", "--no-instructions")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := initdb.CombinedOutput(); err != nil {
		return fail(fmt.Errorf("initdb: %w\n%s", err, out))
	}
	os.Remove(pwfile)
	if err := s.Start(); err != nil {
		return fail(err)
	}
	return s, nil
}

// serverUser picks the user the server runs as: the current one unless it
// is root, else "postgres" (Debian's package creates it), else "nobody".
func serverUser() (*syscall.Credential, int, int, error) {
	if os.Geteuid() != 0 {
		return nil, 0, 0, nil
	}
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, err1 := strconv.Atoi(u.Uid)
		gid, err2 := strconv.Atoi(u.Gid)
		if err1 != nil || err2 != nil {
			continue
		}
		return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, uid, gid, nil
	}
	return nil, 0, 0, errors.New("running as root and no unprivileged user (postgres, nobody) to run PostgreSQL as")
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func (s *Server) dataDir() string { return filepath.Join(s.dir, "data") }

// SocketDir is the directory of the server's unix socket (the host of a
// connection string).
func (s *Server) SocketDir() string { return s.dir }

// Password returns the superuser's password.
func (s *Server) Password() string { return s.password }

// Start starts the server on the existing data directory (after Stop or
// Kill) and waits until it accepts connections.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return errors.New("server already running")
	}
	logf, err := os.OpenFile(filepath.Join(os.TempDir(), filepath.Base(s.dir)+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(filepath.Join(s.bin, "postgres"), "-D", s.dataDir(),
		"-k", s.dir, "-c", "listen_addresses=", "-c", "port=5432",
		"-c", "fsync=on", "-c", "synchronous_commit=on", "-c", "full_page_writes=on",
		"-c", "max_connections=200", "-c", "shared_buffers=64MB",
		"-c", "log_min_messages=warning", "-c", "log_connections=off")
	cmd.Stdout, cmd.Stderr = logf, logf
	// Pdeathsig: a test binary that dies (a timeout's panic) takes the
	// server with it; SIGQUIT is PostgreSQL's immediate shutdown.
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred, Pdeathsig: syscall.SIGQUIT}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start postgres: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	s.cmd, s.log = cmd, logf
	ctx, cancel := context.WithTimeout(context.Background(), startBound)
	defer cancel()
	for {
		conn, err := pgx.Connect(ctx, s.dsn("postgres", Superuser, s.password))
		if err == nil {
			conn.Close(ctx)
			return nil
		}
		select {
		case werr := <-exited:
			s.cmd = nil
			logf.Close()
			log, _ := os.ReadFile(logf.Name())
			return fmt.Errorf("postgres exited during start: %w\n%s", werr, log)
		case <-ctx.Done():
			_ = s.stopLocked(syscall.SIGQUIT) // the start-up timeout is the error to report
			return fmt.Errorf("postgres did not accept connections within %s: %w", startBound, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Stop shuts the server down (fast shutdown: sessions are ended, nothing
// committed is lost) and waits for it to exit.
func (s *Server) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopLocked(syscall.SIGINT)
}

// Kill stops the server with SIGKILL on the postmaster, as a crash would:
// the next Start recovers from the write-ahead log.
func (s *Server) Kill() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopLocked(syscall.SIGKILL)
}

func (s *Server) stopLocked(sig syscall.Signal) error {
	if s.cmd == nil {
		return nil
	}
	pid := s.cmd.Process.Pid
	defer func() { s.cmd = nil; s.log.Close() }()
	if err := syscall.Kill(pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("signal postgres %d: %w", pid, err)
	}
	// The postmaster is our child, reaped by Start's goroutine: wait for
	// its PID to go, and for its backends (which leave the socket's lock
	// file and shared memory) after a SIGKILL.
	deadline := time.Now().Add(30 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			_ = syscall.Kill(pid, syscall.SIGKILL) // best effort; the timeout is the error to report
			return fmt.Errorf("postgres %d did not stop within 30s after %s", pid, sig)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if sig == syscall.SIGKILL {
		// Orphaned backends notice the postmaster's death and exit; the
		// next postmaster refuses to start while they hold the shared
		// memory, so wait for the data directory's pid file owner to go.
		for time.Now().Before(deadline) && s.backendsAlive() {
			time.Sleep(10 * time.Millisecond)
		}
	}
	return nil
}

// backendsAlive reports whether a process still runs with the data
// directory on its command line.
func (s *Server) backendsAlive() bool {
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err == nil && strings.Contains(string(b), "postgres") {
			env, _ := os.Readlink(filepath.Join(filepath.Dir(p), "cwd"))
			if strings.HasPrefix(env, s.dataDir()) {
				return true
			}
		}
	}
	return false
}

// Close stops the server and removes its directory.
func (s *Server) Close() error {
	err := s.Stop()
	if rerr := os.RemoveAll(s.dir); rerr != nil && err == nil {
		err = rerr
	}
	if s.log != nil {
		os.Remove(s.log.Name())
	}
	return err
}

// dsn is the connection string of database db as user with password.
func (s *Server) dsn(db, user, password string) string {
	return fmt.Sprintf("host=%s port=5432 dbname=%s user=%s password=%s sslmode=disable", s.dir, db, user, password)
}

// ConnString returns the superuser's connection string to database db,
// password included.
func (s *Server) ConnString(db string) string { return s.dsn(db, Superuser, s.password) }

// ConnStringWithoutPassword returns the superuser's connection string to
// database db without the password, for tests of password files.
func (s *Server) ConnStringWithoutPassword(db string) string {
	return fmt.Sprintf("host=%s port=5432 dbname=%s user=%s sslmode=disable", s.dir, db, Superuser)
}

// NewDatabase creates an empty database and returns its connection
// string; the database goes with the cluster.
func (s *Server) NewDatabase(t testing.TB) string {
	t.Helper()
	return s.ConnString(s.CreateDatabase(t))
}

// CreateDatabase creates an empty database and returns its name.
func (s *Server) CreateDatabase(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("test_%d", s.dbs.Add(1))
	s.Exec(t, "postgres", "CREATE DATABASE "+name)
	return name
}

// Exec runs sql as the superuser on database db.
func (s *Server) Exec(t testing.TB, db, sql string, args ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.ConnString(db))
	if err != nil {
		t.Fatalf("pgtest: connect to %s: %v", db, err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql, args...); err != nil {
		t.Fatalf("pgtest: %s: %v", sql, err)
	}
}
