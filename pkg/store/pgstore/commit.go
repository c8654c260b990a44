package pgstore

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/agentid/agentid/pkg/audit"
	"github.com/agentid/agentid/pkg/delegation"
	"github.com/agentid/agentid/pkg/store"
)

// Group commit, as boltstore's committer. The serialisation points of the
// whole database are the revision counter and the audit head, both in the
// one row of agentid_meta: every write transaction, of every replica, locks
// that row first (SELECT ... FOR UPDATE), so revisions and audit sequences
// are allocated in one order across replicas, without gaps, and the chain
// cannot fork. A transaction per write would then make each write wait for
// the previous one's round trips and WAL flush; instead one goroutine per
// replica takes every write waiting and runs them in one transaction:
//
//  1. one round trip: BEGIN, lock the meta row, read the delegations the
//     writes name (prefetch);
//  2. the writes run in Go against that state, deciding refusals
//     (duplicate, unknown or inactive parent, already revoked) without the
//     database and sealing audit events onto the head;
//  3. one round trip: the inserts and updates as a few multi-row statements
//     (unnest of arrays), the new meta row, the compaction of the change
//     log, the notification and COMMIT (one WAL flush for all).
//
// A revocation reads its subtree from the database, so the writes queued
// before it are sent first (inside the same transaction); it costs a round
// trip more.
//
// A refusal writes nothing and does not fail the group. A failure (the
// connection lost, a statement refused) fails the whole transaction and is
// reported to every write of the group: unlike boltstore, whose functions
// can only fail alone, here a failure is the database's, which every write
// shares; and a group whose COMMIT was lost in flight may have committed,
// so it is not retried.

// writeOp is one caller's write, waiting for its commit.
type writeOp struct {
	// prefetch names the delegations the write reads, read for the whole
	// group in step 1.
	prefetch []string
	// fn applies the write to w; an error fails the group. Refusals are
	// reported through the caller's own variables, never as an error.
	fn   func(w *wtx) error
	done chan error
}

type committer struct {
	s       *Store
	max     int
	timeout time.Duration
	ops     chan writeOp
	closing chan struct{}
	stopped sync.WaitGroup
}

func newCommitter(s *Store, max int, timeout time.Duration) *committer {
	c := &committer{s: s, max: max, timeout: timeout, ops: make(chan writeOp), closing: make(chan struct{})}
	c.stopped.Go(c.run)
	return c
}

// write runs op in a write transaction, possibly with other callers'
// writes, and returns once that transaction is committed (or failed). A
// caller whose context ends before its write is taken gets the context's
// error; once taken, the write completes.
func (c *committer) write(ctx context.Context, prefetch []string, fn func(w *wtx) error) error {
	op := writeOp{prefetch: prefetch, fn: fn, done: make(chan error, 1)}
	select {
	case c.ops <- op:
		return <-op.done
	case <-c.closing:
		return store.ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (c *committer) close() {
	close(c.closing)
	c.stopped.Wait()
}

func (c *committer) run() {
	batch := make([]writeOp, 0, c.max)
	for {
		select {
		case op := <-c.ops:
			batch = append(batch[:0], op)
		case <-c.closing:
			return
		}
	drain:
		for len(batch) < c.max {
			select {
			case op := <-c.ops:
				batch = append(batch, op)
			default:
				break drain
			}
		}
		err := c.commit(batch)
		for _, op := range batch {
			op.done <- err
		}
	}
}

// meta is the row of agentid_meta.
type meta struct {
	revision, compacted uint64
	head, base          audit.Anchor
	swept               uint64
}

const metaColumns = "revision, compacted, audit_seq, audit_hash, audit_base_seq, audit_base_hash, audit_swept"

func scanMeta(row pgx.Row) (meta, error) {
	var (
		m                      meta
		rev, comp, seq, bs, sw int64
		hash, bhash            []byte
	)
	if err := row.Scan(&rev, &comp, &seq, &hash, &bs, &bhash, &sw); err != nil {
		return m, err
	}
	m.revision, m.compacted, m.swept = uint64(rev), uint64(comp), uint64(sw)
	m.head.Sequence, m.base.Sequence = uint64(seq), uint64(bs)
	for _, h := range []struct {
		dst *audit.Hash
		src []byte
		seq uint64
	}{{&m.head.Hash, hash, m.head.Sequence}, {&m.base.Hash, bhash, m.base.Sequence}} {
		switch {
		case h.seq == 0 && len(h.src) == 0:
		case len(h.src) == len(h.dst):
			copy(h.dst[:], h.src)
		default:
			return m, fmt.Errorf("store: corrupt database: audit hash of %d bytes at sequence %d", len(h.src), h.seq)
		}
	}
	return m, nil
}

func hashBytes(a audit.Anchor) []byte {
	if a.Sequence == 0 {
		return []byte{}
	}
	return a.Hash[:]
}

// row is a stored delegation with its seq.
type row struct {
	seq       uint64
	parentSeq uint64 // 0 for a root
	d         *delegation.Delegation
}

// wtx is the state of one group's transaction.
type wtx struct {
	s    *Store
	ctx  context.Context
	conn *pgxpool.Conn
	meta meta
	// rows caches the delegations read or written in the transaction, by
	// id; a nil entry is an id known not to be stored.
	rows map[string]*row

	// Writes not yet sent, as columns of the multi-row statements.
	ins     inserts
	revs    []int64  // revoked seqs, with
	revRecs [][]byte // their new records
	chRev   []int64  // changes: revision,
	chKind  []int16  // kind,
	chSeq   []int64  // seq
	evSeq   []int64  // events: sequence,
	evType  []int16  // type,
	evDlg   []*string
	evRec   [][]byte
	changed bool // a change to delegations: notify
}

type inserts struct {
	seq, parent, expires []int64
	id, iss, sub, agent  []string
	state                []int16
	record               [][]byte
}

// commit runs batch in one transaction.
func (c *committer) commit(batch []writeOp) error {
	s := c.s
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return s.dbErr(context.Background(), "begin a write transaction", err)
	}
	// A connection left inside a transaction (a failure below) is not
	// idle: the pool closes it on release, which rolls the transaction
	// back on the server.
	defer conn.Release()
	w := &wtx{s: s, ctx: ctx, conn: conn, rows: map[string]*row{}}

	var ids []string
	for _, op := range batch {
		ids = append(ids, op.prefetch...)
	}
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	b.Queue("SELECT " + metaColumns + " FROM agentid_meta FOR UPDATE")
	if len(ids) > 0 {
		b.Queue("SELECT seq, coalesce(parent_seq, 0), record FROM agentid_delegations WHERE id = ANY($1)", ids)
	}
	br := conn.SendBatch(ctx, b)
	_, err = br.Exec()
	if err == nil {
		w.meta, err = scanMeta(br.QueryRow())
	}
	if err == nil && len(ids) > 0 {
		err = w.scanRows(br)
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return s.dbErr(context.Background(), "begin a write transaction", err)
	}
	for _, id := range ids {
		if _, ok := w.rows[id]; !ok {
			w.rows[id] = nil
		}
	}
	for _, op := range batch {
		if err := op.fn(w); err != nil {
			return s.dbErr(context.Background(), "write", err)
		}
	}
	if err := w.commit(); err != nil {
		return s.dbErr(context.Background(), "commit", err)
	}
	if w.changed {
		s.notify(w.meta.revision)
	}
	return nil
}

// scanRows reads rows of (seq, parent_seq, record) into the cache.
func (w *wtx) scanRows(br pgx.BatchResults) error {
	rows, err := br.Query()
	if err != nil {
		return err
	}
	_, err = w.collect(rows)
	return err
}

// collect reads rows of (seq, parent_seq, record) into the cache and
// returns them.
func (w *wtx) collect(rows pgx.Rows) ([]*row, error) {
	defer rows.Close()
	var out []*row
	for rows.Next() {
		var (
			seq, parent int64
			rec         []byte
		)
		if err := rows.Scan(&seq, &parent, &rec); err != nil {
			return nil, err
		}
		d, err := decodeDelegation(uint64(seq), rec)
		if err != nil {
			return nil, err
		}
		r := &row{seq: uint64(seq), parentSeq: uint64(parent), d: d}
		w.rows[d.ID.String()] = r
		out = append(out, r)
	}
	return out, rows.Err()
}

// get returns the stored delegation id, nil when it is not stored.
func (w *wtx) get(id string) (*row, error) {
	if r, ok := w.rows[id]; ok {
		return r, nil
	}
	if err := w.flush(); err != nil {
		return nil, err
	}
	rows, err := w.conn.Query(w.ctx, "SELECT seq, coalesce(parent_seq, 0), record FROM agentid_delegations WHERE id = $1", id)
	if err != nil {
		return nil, err
	}
	if _, err := w.collect(rows); err != nil {
		return nil, err
	}
	if _, ok := w.rows[id]; !ok {
		w.rows[id] = nil
	}
	return w.rows[id], nil
}

// subtree returns the delegation at seq and all its descendants, as they
// are in the transaction.
func (w *wtx) subtree(seq uint64) ([]*row, error) {
	if err := w.flush(); err != nil {
		return nil, err
	}
	rows, err := w.conn.Query(w.ctx, `
WITH RECURSIVE t(seq) AS (
	SELECT $1::bigint
	UNION ALL
	SELECT d.seq FROM agentid_delegations d JOIN t ON d.parent_seq = t.seq
)
SELECT d.seq, coalesce(d.parent_seq, 0), d.record FROM agentid_delegations d JOIN t USING (seq)`, int64(seq))
	if err != nil {
		return nil, err
	}
	return w.collect(rows)
}

// addChange allocates the next revision for a change to the delegation at
// seq.
func (w *wtx) addChange(kind store.ChangeKind, seq uint64) uint64 {
	w.meta.revision++
	w.chRev = append(w.chRev, int64(w.meta.revision))
	w.chKind = append(w.chKind, int16(kind))
	w.chSeq = append(w.chSeq, int64(seq))
	w.changed = true
	return w.meta.revision
}

// insert queues a new delegation row.
func (w *wtx) insert(r *row, record []byte) {
	d := r.d
	w.ins.seq = append(w.ins.seq, int64(r.seq))
	w.ins.parent = append(w.ins.parent, int64(r.parentSeq))
	w.ins.expires = append(w.ins.expires, d.ExpiresAt.UnixNano())
	w.ins.id = append(w.ins.id, d.ID.String())
	w.ins.iss = append(w.ins.iss, d.User.Issuer())
	w.ins.sub = append(w.ins.sub, d.User.Subject())
	w.ins.agent = append(w.ins.agent, d.Agent.String())
	w.ins.state = append(w.ins.state, int16(d.State))
	w.ins.record = append(w.ins.record, record)
	w.rows[d.ID.String()] = r
}

// revoke queues the new record of a revoked delegation.
func (w *wtx) revoke(r *row, record []byte) {
	w.revs = append(w.revs, int64(r.seq))
	w.revRecs = append(w.revRecs, record)
}

// appendEvents seals evs onto the head and queues them.
func (w *wtx) appendEvents(evs []*audit.Event) error {
	for _, e := range evs {
		e.Seal(w.meta.head.Sequence+1, w.meta.head.Hash)
		record, err := e.MarshalJSON()
		if err != nil {
			return fmt.Errorf("store: failed to encode audit event %d: %w", e.Sequence, err)
		}
		w.meta.head = e.Anchor()
		var dlg *string
		if e.DelegationID != "" {
			id := e.DelegationID
			dlg = &id
		}
		w.evSeq = append(w.evSeq, int64(e.Sequence))
		w.evType = append(w.evType, int16(e.Type))
		w.evDlg = append(w.evDlg, dlg)
		w.evRec = append(w.evRec, record)
	}
	return nil
}

// queueWrites adds the pending writes to b and clears them.
func (w *wtx) queueWrites(b *pgx.Batch) {
	if n := len(w.ins.seq); n > 0 {
		b.Queue(`INSERT INTO agentid_delegations (seq, parent_seq, expires_at, id, user_issuer, user_subject, agent, state, record)
SELECT seq, nullif(parent, 0), expires, id, iss, sub, agent, state, record
FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[], $8::smallint[], $9::bytea[])
	AS u(seq, parent, expires, id, iss, sub, agent, state, record)`,
			w.ins.seq, w.ins.parent, w.ins.expires, w.ins.id, w.ins.iss, w.ins.sub, w.ins.agent, w.ins.state, w.ins.record)
		w.ins = inserts{}
	}
	if len(w.revs) > 0 {
		b.Queue(`UPDATE agentid_delegations d SET state = $3, record = u.record
FROM unnest($1::bigint[], $2::bytea[]) AS u(seq, record) WHERE d.seq = u.seq`,
			w.revs, w.revRecs, int16(delegation.StateRevoked))
		w.revs, w.revRecs = nil, nil
	}
	if len(w.chRev) > 0 {
		b.Queue(`INSERT INTO agentid_changes (revision, kind, seq)
SELECT * FROM unnest($1::bigint[], $2::smallint[], $3::bigint[])`, w.chRev, w.chKind, w.chSeq)
		w.chRev, w.chKind, w.chSeq = nil, nil, nil
	}
	if len(w.evSeq) > 0 {
		b.Queue(`INSERT INTO agentid_events (seq, type, delegation_id, record)
SELECT * FROM unnest($1::bigint[], $2::smallint[], $3::text[], $4::bytea[])`, w.evSeq, w.evType, w.evDlg, w.evRec)
		w.evSeq, w.evType, w.evDlg, w.evRec = nil, nil, nil, nil
	}
}

// flush sends the pending writes, inside the transaction.
func (w *wtx) flush() error {
	b := &pgx.Batch{}
	w.queueWrites(b)
	if b.Len() == 0 {
		return nil
	}
	return w.conn.SendBatch(w.ctx, b).Close()
}

// commit sends the pending writes, the meta row, the change log's
// compaction and the notification, and commits, in one round trip.
func (w *wtx) commit() error {
	b := &pgx.Batch{}
	w.queueWrites(b)
	m := &w.meta
	if lim := w.s.changeLogLimit; m.revision > lim && m.revision-lim > m.compacted {
		m.compacted = m.revision - lim
		b.Queue("DELETE FROM agentid_changes WHERE revision <= $1", int64(m.compacted))
	}
	b.Queue(`UPDATE agentid_meta SET revision = $1, compacted = $2, audit_seq = $3, audit_hash = $4,
	audit_base_seq = $5, audit_base_hash = $6`,
		int64(m.revision), int64(m.compacted), int64(m.head.Sequence), hashBytes(m.head),
		int64(m.base.Sequence), hashBytes(m.base))
	if w.changed {
		b.Queue("SELECT pg_notify($1, $2)", notifyChannel, strconv.FormatUint(m.revision, 10))
	}
	b.Queue("COMMIT")
	return w.conn.SendBatch(w.ctx, b).Close()
}
