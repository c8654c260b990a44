package boltstore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/agentid/agentid/pkg/audit"
	"github.com/agentid/agentid/pkg/store"
)

// keyCounts counts the keys of the event buckets whose sequence is at or
// below seq, and above it.
type keyCounts struct{ below, above map[string]int }

func countEventKeys(t testing.TB, s *Store, seq uint64) keyCounts {
	t.Helper()
	kc := keyCounts{below: map[string]int{}, above: map[string]int{}}
	err := s.db.View(func(tx *bolt.Tx) error {
		for _, b := range []struct {
			name   []byte
			prefix func([]byte) int
		}{
			{bucketEvents, func([]byte) int { return 0 }},
			{bucketEventsByType, func([]byte) int { return 1 }},
			{bucketEventsByDelegation, eventDelegationPrefixLen},
		} {
			err := tx.Bucket(b.name).ForEach(func(k, _ []byte) error {
				n := b.prefix(k)
				if n < 0 || len(k) != n+8 {
					return fmt.Errorf("malformed %s key %x", b.name, k)
				}
				side := kc.above
				if binary.BigEndian.Uint64(k[n:]) <= seq {
					side = kc.below
				}
				side[string(b.name)]++
				if n > 0 && b.name[len(b.name)-1] == 'n' { // idx_event_delegation, by kind of prefix
					side[string(b.name)+"/"+string(k[:1])]++
				}
				return nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return kc
}

func readSwept(t testing.TB, s *Store) uint64 {
	t.Helper()
	var swept uint64
	if err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		_, swept, err = readPruneState(tx.Bucket(bucketMeta))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return swept
}

func pruneEvent() audit.Event {
	return audit.Event{Time: testT0, Type: audit.TypeAuditPruned, Actor: "local"}
}

func issuances(ids []string, n int) []audit.Event {
	out := make([]audit.Event, n)
	for i := range out {
		out[i] = audit.Event{Time: testT0, Type: audit.TypeTokenIssued, Actor: testAgent.String(), DelegationID: ids[i%len(ids)]}
		if i%5 == 4 {
			out[i] = audit.Event{Time: testT0, Type: audit.TypeAgentSynced, Actor: "agentid-server"} // no delegation
		}
	}
	return out
}

// mixedLog fills s with events under every kind of idx_event_delegation
// prefix: a delegation stored throughout ('s'), one named before it was
// stored ('i' then 's'), one purged since ('s' moved to 'i', then 'i'),
// and ids never stored ('i'); plus events naming none. It returns the ids.
func mixedLog(t *testing.T, s *Store) []string {
	t.Helper()
	ctx := context.Background()
	kept, later, purged := newRoot(t), newRoot(t), newRoot(t)
	kept.ExpiresAt, later.ExpiresAt = testT0.Add(48*time.Hour), testT0.Add(48*time.Hour)
	ids := []string{kept.ID.String(), later.ID.String(), purged.ID.String(), "dlg_unknown_1", "dlg_unknown_2"}
	mustCreate(t, s, kept)
	mustCreate(t, s, purged)
	if err := s.AppendEvents(ctx, issuances(ids, 60)...); err != nil {
		t.Fatal(err)
	}
	mustCreate(t, s, later)
	other := newRoot(t)
	other.ExpiresAt = testT0.Add(48 * time.Hour)
	mustCreate(t, s, other) // pushes purged's creation out of a log of 1
	if n, err := s.PurgeExpired(ctx, testT0.Add(2*time.Hour), 10); err != nil || n != 1 {
		t.Fatalf("PurgeExpired = %d, %v; want 1", n, err)
	}
	if err := s.AppendEvents(ctx, issuances(ids, 60)...); err != nil {
		t.Fatal(err)
	}
	return ids
}

// listed returns the sequences ListEvents returns for f.
func listed(t *testing.T, s *Store, f store.EventFilter) []uint64 {
	t.Helper()
	var out []uint64
	token := ""
	for {
		evs, next, err := s.ListEvents(context.Background(), f, store.Page{Size: 13, Token: token})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range evs {
			out = append(out, e.Sequence)
		}
		if next == "" {
			return out
		}
		token = next
	}
}

func above(seqs []uint64, base uint64) []uint64 {
	return slices.DeleteFunc(slices.Clone(seqs), func(q uint64) bool { return q <= base })
}

// TestPruneSweepsEveryKey prunes, in chunks of 7 keys, a log whose
// delegation index holds every kind of prefix: every key at or below the
// base goes, every key above it stays, and the listings after the prune
// are the listings before it without the pruned events.
func TestPruneSweepsEveryKey(t *testing.T) {
	s := openTest(t, Options{ChangeLogLimit: 1})
	s.pruneChunk = 7
	ctx := context.Background()
	ids := mixedLog(t, s)
	filters := []store.EventFilter{{}, {Type: audit.TypeTokenIssued}, {Type: audit.TypeAgentSynced}, {Type: audit.TypeDelegationCreated}}
	for _, id := range ids {
		filters = append(filters, store.EventFilter{DelegationID: id})
	}
	before := make([][]uint64, len(filters))
	for i, f := range filters {
		before[i] = listed(t, s, f)
	}
	all, _, err := s.ListEvents(ctx, store.EventFilter{}, store.Page{Size: store.MaxPageSize})
	if err != nil {
		t.Fatal(err)
	}
	through := all[len(all)/2].Anchor() // in the middle of the second batch of issuances
	kept := countEventKeys(t, s, through.Sequence)
	for _, side := range []map[string]int{kept.below, kept.above} {
		for _, kind := range []string{"i", "s"} {
			if side[string(bucketEventsByDelegation)+"/"+kind] == 0 {
				t.Fatalf("the log has no %q delegation index keys on one side of the base: %v", kind, kept)
			}
		}
	}

	n, err := s.PruneEvents(ctx, through, pruneEvent())
	if err != nil || n != int(through.Sequence) {
		t.Fatalf("PruneEvents = %d, %v; want %d", n, err, through.Sequence)
	}
	after := countEventKeys(t, s, through.Sequence)
	if len(after.below) != 0 {
		t.Fatalf("keys at or below the base left: %v", after.below)
	}
	// Above the base: what was there, plus the prune event in events and
	// idx_event_type.
	kept.above[string(bucketEvents)]++
	kept.above[string(bucketEventsByType)]++
	for b, want := range kept.above {
		if after.above[b] != want {
			t.Errorf("%s: %d keys above the base, want %d", b, after.above[b], want)
		}
	}
	for i, f := range filters {
		want := above(before[i], through.Sequence)
		if f == (store.EventFilter{}) {
			want = append(want, uint64(len(all)+1)) // the prune's own event
		}
		if got := listed(t, s, f); !slices.Equal(got, want) {
			t.Errorf("filter %+v: %v, want %v", f, got, want)
		}
	}
	if got := readSwept(t, s); got != through.Sequence {
		t.Fatalf("audit_swept = %d, want %d", got, through.Sequence)
	}
	if err := s.Check(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestPruneInterrupted stops a prune after its first transaction, as a
// crash would: the keys at or below the base are still stored, yet no
// reader sees them and Check passes; a purge meanwhile deletes the pruned
// entries it would have moved; the next Open deletes the rest.
func TestPruneInterrupted(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agentid.db")
	s, err := Open(path, Options{ChangeLogLimit: 1})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ids := mixedLog(t, s)
	// A delegation to purge while the deletion is pending, with events on
	// both sides of the base.
	doomed := newRoot(t)
	mustCreate(t, s, doomed)
	if err := s.AppendEvents(ctx, issuances([]string{doomed.ID.String()}, 4)...); err != nil {
		t.Fatal(err)
	}
	ids = append(ids, doomed.ID.String())
	all, _, err := s.ListEvents(ctx, store.EventFilter{}, store.Page{Size: store.MaxPageSize})
	if err != nil {
		t.Fatal(err)
	}
	through := all[len(all)-3].Anchor() // the doomed one's first two issuances are pruned
	if n, err := s.commitPrune(ctx, through, pruneEvent()); err != nil || n != int(through.Sequence) {
		t.Fatalf("commitPrune = %d, %v", n, err)
	}
	left := countEventKeys(t, s, through.Sequence)
	if left.below[string(bucketEvents)] != int(through.Sequence) {
		t.Fatalf("the simulated crash deleted events: %v", left.below)
	}
	check := func(stage string) {
		t.Helper()
		for _, f := range []store.EventFilter{{}, {AfterSeq: 3}, {Type: audit.TypeTokenIssued}, {DelegationID: ids[0]}, {DelegationID: ids[2]}, {DelegationID: ids[3]}, {DelegationID: doomed.ID.String()}} {
			for _, q := range listed(t, s, f) {
				if q <= through.Sequence {
					t.Fatalf("%s: filter %+v lists pruned event %d", stage, f, q)
				}
			}
		}
		if err := s.Check(ctx); err != nil {
			t.Fatalf("%s: Check: %v", stage, err)
		}
	}
	check("interrupted")
	// doomed's creation leaves the log of 1; purging it moves its index
	// entries above the base and drops those at or below it.
	other := newRoot(t)
	other.ExpiresAt = testT0.Add(48 * time.Hour)
	mustCreate(t, s, other)
	if n, err := s.PurgeExpired(ctx, testT0.Add(2*time.Hour), 10); err != nil || n != 1 {
		t.Fatalf("PurgeExpired = %d, %v; want 1", n, err)
	}
	if got, want := listed(t, s, store.EventFilter{DelegationID: doomed.ID.String()}), []uint64{through.Sequence + 1, through.Sequence + 2}; !slices.Equal(got, want) {
		t.Fatalf("events of the purged delegation: %v, want %v", got, want)
	}
	check("purged while interrupted")
	if got := readSwept(t, s); got != 0 {
		t.Fatalf("audit_swept = %d before the deletion", got)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s, err = Open(path, Options{ChangeLogLimit: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if kc := countEventKeys(t, s, through.Sequence); len(kc.below) != 0 {
		t.Fatalf("Open left keys at or below the base: %v", kc.below)
	}
	if got := readSwept(t, s); got != through.Sequence {
		t.Fatalf("audit_swept after Open = %d, want %d", got, through.Sequence)
	}
	check("reopened")
	if base, err := s.AuditBase(ctx); err != nil || base != through {
		t.Fatalf("AuditBase = %s, %v; want %s", base, err, through)
	}
}

// TestCheckReportsPrunedLeftovers: once a prune's deletion finished, a key
// at or below the base is a fault Check names.
func TestCheckReportsPrunedLeftovers(t *testing.T) {
	s := openTest(t, Options{})
	ctx := context.Background()
	if err := s.AppendEvents(ctx, issuances([]string{"dlg_x"}, 5)...); err != nil {
		t.Fatal(err)
	}
	evs, _, err := s.ListEvents(ctx, store.EventFilter{}, store.Page{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.PruneEvents(ctx, evs[2].Anchor(), pruneEvent()); err != nil {
		t.Fatal(err)
	}
	stale := join([]byte{byte(audit.TypeTokenIssued)}, u64(2))
	put := func(f func(b *bolt.Bucket) error) {
		if err := s.db.Update(func(tx *bolt.Tx) error { return f(tx.Bucket(bucketEventsByType)) }); err != nil {
			t.Fatal(err)
		}
	}
	put(func(b *bolt.Bucket) error { return b.Put(stale, nil) })
	err = s.Check(ctx)
	want := fmt.Sprintf("store: check: idx_event_type entry %x is at or below the audit base 3, whose deletion finished", stale)
	if err == nil || err.Error() != want {
		t.Fatalf("Check = %v, want %q", err, want)
	}
	put(func(b *bolt.Bucket) error { return b.Delete(stale) })
}

// TestOpenRefusesBaseAtHead: the base is always below the head (the prune's
// own event follows it), so meta saying otherwise is damage Open reports.
func TestOpenRefusesBaseAtHead(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agentid.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.AppendEvents(context.Background(), issuances([]string{"dlg_x"}, 2)...); err != nil {
		t.Fatal(err)
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		return errors.Join(meta.Put(keyAuditBaseSeq, u64(2)), meta.Put(keyAuditBaseHash, make([]byte, 32)))
	})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	_, err = Open(path, Options{})
	if want := "store: corrupt file: audit base 2, deleted through 0, last event 2"; err == nil || err.Error() != want {
		t.Fatalf("Open = %v, want %q", err, want)
	}
}

// fillEvents appends n token-issued events naming ids in turn, in
// transactions of 5,000, as benchmark setup.
func fillEvents(b *testing.B, s *Store, ids []string, n int) {
	b.Helper()
	evs := issuances(ids, n)
	for chunk := range slices.Chunk(evs, 5000) {
		err := s.db.Update(func(tx *bolt.Tx) error {
			ptrs := make([]*audit.Event, len(chunk))
			for i := range chunk {
				ptrs[i] = &chunk[i]
			}
			return appendEvents(tx, ptrs)
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPruneEvents prunes 100,000 events (token issuances under 100
// delegations, one in five an agent sync naming none) while one goroutine
// creates delegations back to back, and reports the time of the prune, the
// worst and the median wait of a create that overlapped it, and how many
// creates completed during it. chunk=all deletes everything in one
// transaction, for comparison with the default chunks.
func BenchmarkPruneEvents(b *testing.B) {
	for _, chunk := range []int{defaultPruneChunk, 1 << 30} {
		name := strconv.Itoa(chunk)
		if chunk == 1<<30 {
			name = "all"
		}
		b.Run("chunk="+name, func(b *testing.B) { benchPrune(b, chunk) })
	}
}

func benchPrune(b *testing.B, chunk int) {
	const n = 100_000
	ctx := context.Background()
	for b.Loop() {
		b.StopTimer()
		s := benchStore(b, Options{})
		s.pruneChunk = chunk
		var ids []string
		for range 100 {
			d := newRoot(b)
			d.ExpiresAt = testT0.Add(48 * time.Hour)
			mustCreate(b, s, d)
			ids = append(ids, d.ID.String())
		}
		fillEvents(b, s, ids, n)
		evs, _, err := s.ListEvents(ctx, store.EventFilter{AfterSeq: n + 99}, store.Page{Size: 1})
		if err != nil || len(evs) != 1 {
			b.Fatalf("event %d: %v", n+100, err)
		}
		through := evs[0].Anchor() // the last event: every one but the prune's own goes

		var (
			mu      sync.Mutex
			waits   []time.Duration
			stop    = make(chan struct{})
			stopped sync.WaitGroup
			pruning = make(chan struct{})
		)
		stopped.Go(func() {
			<-pruning
			for {
				select {
				case <-stop:
					return
				default:
				}
				d := newRoot(b)
				start := time.Now()
				if _, err := s.CreateDelegation(ctx, d, createdEvent(d)); err != nil {
					b.Error(err)
					return
				}
				mu.Lock()
				waits = append(waits, time.Since(start))
				mu.Unlock()
			}
		})
		b.StartTimer()
		start := time.Now()
		close(pruning)
		got, err := s.PruneEvents(ctx, through, pruneEvent())
		elapsed := time.Since(start)
		b.StopTimer()
		close(stop)
		stopped.Wait()
		if err != nil || got != int(through.Sequence) {
			b.Fatalf("PruneEvents = %d, %v", got, err)
		}
		if kc := countEventKeys(b, s, through.Sequence); len(kc.below) != 0 {
			b.Fatalf("keys left: %v", kc.below)
		}
		if err := s.Check(ctx); err != nil {
			b.Fatal(err)
		}
		slices.Sort(waits)
		if len(waits) == 0 {
			b.Fatal("no create overlapped the prune")
		}
		b.ReportMetric(elapsed.Seconds(), "prune-s")
		b.ReportMetric(float64(waits[len(waits)-1].Microseconds())/1000, "create-max-ms")
		b.ReportMetric(float64(percentile(waits, 0.5).Microseconds())/1000, "create-p50-ms")
		b.ReportMetric(float64(len(waits)), "creates")
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}

// A malformed index key is Check's to report: the sweep steps over it, so
// a prune completes and the store keeps opening (a sweep that failed on it
// would fail every Open after).
func TestPruneStepsOverMalformedIndexKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := s.AppendEvents(ctx, issuances([]string{"dlg_x"}, 10)...); err != nil {
		t.Fatal(err)
	}
	if err := s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketEventsByDelegation).Put([]byte("zzz"), nil)
	}); err != nil {
		t.Fatal(err)
	}
	evs, _, err := s.ListEvents(ctx, store.EventFilter{}, store.Page{Size: 5})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := s.PruneEvents(ctx, evs[4].Anchor(), pruneEvent()); err != nil || n != 5 {
		t.Fatalf("PruneEvents = %d, %v; want 5 and no error", n, err)
	}
	if err := s.Check(ctx); err == nil || !strings.Contains(err.Error(), "7a7a7a") {
		t.Fatalf("Check = %v; want the malformed key reported", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(path, Options{})
	if err != nil {
		t.Fatalf("Open after the prune: %v", err)
	}
	s.Close()
}

// Deleting a prefix of the log by hand and moving the base over it is
// caught by Check: the base must be the anchor the last audit_pruned event
// names, and forging that event would mean forging its hash and every one
// after it.
func TestCheckCatchesHandMovedBase(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	if err := s.AppendEvents(ctx, issuances([]string{"dlg_x"}, 10)...); err != nil {
		t.Fatal(err)
	}
	evs, _, err := s.ListEvents(ctx, store.EventFilter{}, store.Page{Size: 10})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.PruneEvents(ctx, evs[2].Anchor(), pruneEvent()); err != nil {
		t.Fatal(err)
	}
	if err := s.Check(ctx); err != nil {
		t.Fatalf("Check after a prune: %v", err)
	}
	moved := evs[5].Anchor()
	if err := s.db.Update(func(tx *bolt.Tx) error {
		for seq := uint64(4); seq <= moved.Sequence; seq++ {
			if err := tx.Bucket(bucketEvents).Delete(u64(seq)); err != nil {
				return err
			}
		}
		meta := tx.Bucket(bucketMeta)
		if err := meta.Put(keyAuditBaseSeq, u64(moved.Sequence)); err != nil {
			return err
		}
		if err := meta.Put(keyAuditSwept, u64(moved.Sequence)); err != nil {
			return err
		}
		return meta.Put(keyAuditBaseHash, moved.Hash[:])
	}); err != nil {
		t.Fatal(err)
	}
	err = s.Check(ctx)
	want := fmt.Sprintf("audit base %s is not the anchor the last audit_pruned event names (%q)", moved, evs[2].Anchor().String())
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("Check after moving the base by hand = %v; want it to say %s", err, want)
	}
}
