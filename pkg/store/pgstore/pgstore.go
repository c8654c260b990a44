package pgstore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/agentid/agentid/pkg/store"
)

// Defaults of Config.
const (
	// DefaultChangeLogLimit keeps the last 100,000 changes, as boltstore.
	DefaultChangeLogLimit = 100_000
	// DefaultMaxBatchSize lets up to 128 waiting writes of one replica share
	// one transaction (see commit.go).
	DefaultMaxBatchSize = 128
	// DefaultMaxConns bounds the connections a replica opens: one for the
	// committer, one for the listener, the rest for reads.
	DefaultMaxConns = 16
	// DefaultWriteTimeout bounds one write transaction, so that a server
	// that stops answering (a network partition) fails the writes waiting
	// on it instead of holding them forever.
	DefaultWriteTimeout = 15 * time.Second
	// DefaultPollInterval is how often a replica reads the revision when no
	// notification came: the bound on the latency a lost notification costs.
	DefaultPollInterval = time.Second
	// DefaultConnectTimeout bounds Open's first connection.
	DefaultConnectTimeout = 10 * time.Second
)

// notifyChannel is the LISTEN/NOTIFY channel a commit that changed
// delegations signals on; the payload is the new revision.
const notifyChannel = "agentid_changes"

// Config configures Open.
type Config struct {
	// ConnString is a libpq connection string or URL
	// ("host=db.example.com dbname=agentid user=agentid sslmode=verify-full
	// sslrootcert=/etc/agentid/pg-ca.pem"). It may hold the password, but
	// should not: read it from a file the server's config names, never from
	// a command line. It is never logged nor put in an error.
	ConnString string
	// PasswordFile, when set, is read for the password at each new
	// connection (trailing newline removed), so a rotated Secret is picked up
	// without a restart. It overrides a password in ConnString.
	PasswordFile string
	// Clock gives the time for a revocation or an audit event recorded
	// without one. Default time.Now.
	Clock func() time.Time
	// ChangeLogLimit is how many of the most recent changes Changes can
	// return; 0 means DefaultChangeLogLimit. Every replica of one database
	// must use the same value.
	ChangeLogLimit int
	// MaxBatchSize is the most waiting writes committed together in one
	// transaction; 0 means DefaultMaxBatchSize.
	MaxBatchSize int
	// MaxConns bounds the connection pool; 0 means DefaultMaxConns, at
	// least 3.
	MaxConns int
	// WriteTimeout bounds each write transaction; 0 means DefaultWriteTimeout.
	WriteTimeout time.Duration
	// PollInterval is how often the replica reads the revision in case a
	// notification was lost; 0 means DefaultPollInterval.
	PollInterval time.Duration
	// ConnectTimeout bounds Open's first connection and its migrations; 0
	// means DefaultConnectTimeout.
	ConnectTimeout time.Duration
}

// Store is the PostgreSQL implementation of store.Store. Several Stores
// (replicas, in several processes) may share one database: they see one
// revision order and one audit chain. It is safe for concurrent use.
type Store struct {
	pool           *pgxpool.Pool
	committer      *committer
	clock          func() time.Time
	changeLogLimit uint64
	pollInterval   time.Duration
	closed         atomic.Bool
	// seen is the last revision subscribers were told about; the listener
	// signals when the database is past it.
	seen atomic.Uint64

	stopListen context.CancelFunc
	listening  sync.WaitGroup
	sweepMu    sync.Mutex
	pruneChunk int

	mu   sync.Mutex
	subs map[chan struct{}]struct{}
}

var _ store.Store = (*Store)(nil)

// Open connects to the database, applies the schema migrations this
// version knows (under a lock, so replicas starting together migrate once)
// and starts listening for the other replicas' changes. It refuses a
// database whose schema is newer than this version (store.ErrNewerSchema).
func Open(ctx context.Context, config Config) (*Store, error) {
	switch {
	case config.ConnString == "":
		return nil, fmt.Errorf("%w: empty connection string", store.ErrInvalidArgument)
	case config.ChangeLogLimit < 0:
		return nil, fmt.Errorf("%w: change log limit %d is negative", store.ErrInvalidArgument, config.ChangeLogLimit)
	case config.MaxBatchSize < 0:
		return nil, fmt.Errorf("%w: max batch size %d is negative", store.ErrInvalidArgument, config.MaxBatchSize)
	case config.MaxConns < 0 || config.MaxConns > 0 && config.MaxConns < 3:
		return nil, fmt.Errorf("%w: max connections %d: at least 3", store.ErrInvalidArgument, config.MaxConns)
	case config.WriteTimeout < 0 || config.PollInterval < 0 || config.ConnectTimeout < 0:
		return nil, fmt.Errorf("%w: negative timeout", store.ErrInvalidArgument)
	}
	if config.Clock == nil {
		config.Clock = time.Now
	}
	if config.ChangeLogLimit == 0 {
		config.ChangeLogLimit = DefaultChangeLogLimit
	}
	if config.MaxBatchSize == 0 {
		config.MaxBatchSize = DefaultMaxBatchSize
	}
	if config.MaxConns == 0 {
		config.MaxConns = DefaultMaxConns
	}
	if config.WriteTimeout == 0 {
		config.WriteTimeout = DefaultWriteTimeout
	}
	if config.PollInterval == 0 {
		config.PollInterval = DefaultPollInterval
	}
	if config.ConnectTimeout == 0 {
		config.ConnectTimeout = DefaultConnectTimeout
	}
	pc, err := poolConfig(config)
	if err != nil {
		return nil, err
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), pc)
	if err != nil {
		return nil, fmt.Errorf("store: failed to set up the connection pool: %w", err)
	}
	octx, cancel := context.WithTimeout(ctx, config.ConnectTimeout)
	defer cancel()
	if err := migrate(octx, pool, migrations); err != nil {
		pool.Close()
		return nil, err
	}
	s := &Store{
		pool:           pool,
		clock:          config.Clock,
		changeLogLimit: uint64(config.ChangeLogLimit),
		pollInterval:   config.PollInterval,
		pruneChunk:     defaultPruneChunk,
		subs:           make(map[chan struct{}]struct{}),
	}
	rev, err := s.Revision(octx)
	if err != nil {
		pool.Close()
		return nil, err
	}
	s.seen.Store(uint64(rev))
	s.committer = newCommitter(s, config.MaxBatchSize, config.WriteTimeout)
	lctx, stop := context.WithCancel(context.Background())
	s.stopListen = stop
	s.listening.Go(func() { s.listen(lctx) })
	// A prune interrupted by a crash (of any replica) left events at or
	// below the base that nobody reads: delete them now.
	if _, err := s.sweepPruned(octx); err != nil {
		s.Close()
		return nil, fmt.Errorf("store: failed to finish deleting pruned audit events: %w", err)
	}
	return s, nil
}

// poolConfig parses the connection string and sets the password hook.
func poolConfig(config Config) (*pgxpool.Config, error) {
	pc, err := pgxpool.ParseConfig(config.ConnString)
	if err != nil {
		// pgx redacts passwords from its message on a best-effort basis
		// only: a malformed string is too ambiguous to be sure, so the text
		// is not repeated.
		return nil, fmt.Errorf("%w: malformed PostgreSQL connection string (not shown: it may hold a password): %s", store.ErrInvalidArgument, parseProblem(err))
	}
	pc.MaxConns = int32(config.MaxConns)
	pc.MinConns = 1
	pc.ConnConfig.ConnectTimeout = config.ConnectTimeout
	if pc.ConnConfig.RuntimeParams == nil {
		pc.ConnConfig.RuntimeParams = map[string]string{}
	}
	pc.ConnConfig.RuntimeParams["application_name"] = "agentid-server"
	if config.PasswordFile != "" {
		path := config.PasswordFile
		if _, err := readPassword(path); err != nil {
			return nil, err
		}
		pc.BeforeConnect = func(_ context.Context, cc *pgx.ConnConfig) error {
			pw, err := readPassword(path)
			if err != nil {
				return err
			}
			cc.Password = pw
			return nil
		}
	}
	return pc, nil
}

// parseProblem names what pgx found wrong without quoting the string: pgx
// redacts the password it recognises, but a malformed string is too
// ambiguous to be sure, so the problem is rebuilt without the string; an
// underlying error that mentions the password is left out too (it may
// quote it).
func parseProblem(err error) string {
	const generic = "check its syntax (libpq key=value pairs or a postgres:// URL)"
	var pe *pgconn.ParseConfigError
	if !errors.As(err, &pe) {
		return generic
	}
	bare := *pe
	bare.ConnString = ""
	msg := strings.TrimPrefix(bare.Error(), "cannot parse ``: ")
	if strings.Contains(msg, "password") {
		msg, _, _ = strings.Cut(msg, " (")
		if strings.Contains(msg, "password") {
			return generic
		}
	}
	return msg
}

func readPassword(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("store: failed to read the PostgreSQL password file: %w", err)
	}
	pw := strings.TrimRight(string(b), "\r\n")
	if pw == "" {
		return "", fmt.Errorf("store: PostgreSQL password file %s is empty", path)
	}
	return pw, nil
}

// Close waits for the write in progress, stops listening and closes every
// connection and every channel Notify returned. Calling it again is a
// no-op.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	if s.committer != nil {
		s.committer.close()
	}
	if s.stopListen != nil {
		s.stopListen()
		s.listening.Wait()
	}
	s.mu.Lock()
	for ch := range s.subs {
		close(ch)
		delete(s.subs, ch)
	}
	s.mu.Unlock()
	s.sweepMu.Lock() // a sweep in progress ends at its next chunk
	s.pool.Close()
	s.sweepMu.Unlock()
	return nil
}

// Notify implements store.Store: the channel receives after each change
// committed by any replica of the database, through this replica's own
// commits, the other replicas' notifications and, should one be lost, the
// poll of the revision.
func (s *Store) Notify() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() {
		close(ch)
		return ch, func() {}
	}
	s.subs[ch] = struct{}{}
	return ch, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if _, ok := s.subs[ch]; ok {
			delete(s.subs, ch)
			close(ch)
		}
	}
}

// notify wakes every subscriber; rev is the revision now known committed.
func (s *Store) notify(rev uint64) {
	for {
		seen := s.seen.Load()
		if rev <= seen || s.seen.CompareAndSwap(seen, rev) {
			break
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for ch := range s.subs {
		select {
		case ch <- struct{}{}:
		default: // a signal is already pending
		}
	}
}

// listen holds a connection that LISTENs for the other replicas' commits
// and, between notifications, reads the revision every pollInterval. The
// change log table is the truth: a notification only wakes the readers, who
// read Changes; a notification lost (the connection dropped, the listener
// was reconnecting) costs at most one poll interval. After each
// (re)connection it signals once, since it cannot know what it missed.
func (s *Store) listen(ctx context.Context) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := s.listenOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		_ = err // the next writes and reads report the outage to callers
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

func (s *Store) listenOnce(ctx context.Context) error {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	// The connection is LISTENing: it never goes back to the pool.
	pc := conn.Hijack()
	defer pc.Close(context.Background())
	if _, err := pc.Exec(ctx, "LISTEN "+notifyChannel); err != nil {
		return err
	}
	poll := func() error {
		var rev int64
		if err := pc.QueryRow(ctx, "SELECT revision FROM agentid_meta").Scan(&rev); err != nil {
			return err
		}
		if uint64(rev) > s.seen.Load() {
			s.notify(uint64(rev))
		}
		return nil
	}
	s.notify(0) // whatever happened while not listening
	if err := poll(); err != nil {
		return err
	}
	for {
		wctx, cancel := context.WithTimeout(ctx, s.pollInterval)
		n, err := pc.WaitForNotification(wctx)
		cancel()
		switch {
		case err == nil:
			var rev uint64
			_, _ = fmt.Sscan(n.Payload, &rev) // a payload that does not parse leaves rev 0, which still wakes the watchers to re-read
			s.notify(rev)
		case ctx.Err() != nil:
			return ctx.Err()
		case pgconn.Timeout(err):
			if err := poll(); err != nil {
				return err
			}
		default:
			return err
		}
	}
}

// begin rejects a call on a closed store or with a finished context.
func (s *Store) begin(ctx context.Context) error {
	if s.closed.Load() {
		return store.ErrClosed
	}
	return ctx.Err()
}

// dbErr maps an error from PostgreSQL to the store's: ErrClosed after
// Close, the caller's context error as it is, ErrUnavailable when the
// database could not be reached or went away (a connection refused or
// broken, the server shutting down or starting), and otherwise an error
// saying what failed. Errors made by this package pass unchanged.
func (s *Store) dbErr(ctx context.Context, what string, err error) error {
	switch {
	case err == nil:
		return nil
	case s.closed.Load():
		return store.ErrClosed
	case ctx.Err() != nil && errors.Is(err, ctx.Err()):
		return ctx.Err()
	case strings.HasPrefix(err.Error(), "store: "):
		return err
	case unavailable(err):
		return fmt.Errorf("%w: failed to %s: %w", store.ErrUnavailable, what, err)
	}
	return fmt.Errorf("store: failed to %s: %w", what, err)
}

// unavailable reports whether err says the database cannot be reached now,
// rather than that it refused the statement.
func unavailable(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case strings.HasPrefix(pe.Code, "08"), // connection exception
			strings.HasPrefix(pe.Code, "57P"), // admin shutdown, crash shutdown, cannot connect now
			pe.Code == "53300":                // too many connections
			return true
		}
		return false
	}
	// Anything else that is not a PostgreSQL error is the connection's:
	// refused, reset, timed out, closed mid-statement.
	return !errors.Is(err, context.Canceled)
}
