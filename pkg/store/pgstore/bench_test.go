package pgstore

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentid/agentid/pkg/delegation"
	"github.com/agentid/agentid/pkg/store"
	"github.com/agentid/agentid/pkg/store/boltstore"
	"github.com/agentid/agentid/pkg/store/storetest"
)

// createConcurrently creates n root delegations, each with its audit event
// (what CreateDelegation of the API writes), from writers goroutines, and
// returns the latency of each create.
func createConcurrently(b *testing.B, s store.Store, writers, n int) []time.Duration {
	b.Helper()
	var (
		next      atomic.Int64
		wg        sync.WaitGroup
		latencies = make([]time.Duration, n)
		ctx       = context.Background()
	)
	// The delegations are built before the clock starts: the benchmark
	// measures the store, not the id generator.
	ds := make([]*delegation.Delegation, n)
	for i := range ds {
		ds[i] = newRoot(b, storetest.Agent(i%64))
	}
	b.ResetTimer()
	for range writers {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				start := time.Now()
				if _, err := s.CreateDelegation(ctx, ds[i], createdEvent(ds[i])); err != nil {
					b.Error(err)
					return
				}
				latencies[i] = time.Since(start)
			}
		})
	}
	wg.Wait()
	return latencies
}

func percentile(sorted []time.Duration, p float64) time.Duration {
	return sorted[min(len(sorted)-1, int(float64(len(sorted))*p))]
}

// BenchmarkCreateConcurrent measures CreateDelegation with its audit
// event from 16 goroutines on PostgreSQL (fsync and synchronous_commit on,
// on this machine, over its unix socket) and on boltstore (fsync on) in the
// same run: creates/s (issue 14's floor: 3,000/s on PostgreSQL), p50 and
// p99 of one create. Run with a fixed count, e.g.
//
//	CI=1 go test -run '^$' -bench CreateConcurrent -benchtime 20000x ./pkg/store/pgstore/
func BenchmarkCreateConcurrent(b *testing.B) {
	for _, writers := range []int{16, 1} {
		for _, backend := range []string{"postgres", "bolt"} {
			b.Run(fmt.Sprintf("backend=%s/writers=%d", backend, writers), func(b *testing.B) {
				var s store.Store
				switch backend {
				case "postgres":
					pg, err := Open(context.Background(), Config{ConnString: server(b).NewDatabase(b)})
					if err != nil {
						b.Fatal(err)
					}
					s = pg
				case "bolt":
					bs, err := boltstore.Open(filepath.Join(b.TempDir(), "agentid.db"), boltstore.Options{})
					if err != nil {
						b.Fatal(err)
					}
					s = bs
				}
				defer s.Close()
				start := time.Now()
				latencies := createConcurrently(b, s, writers, b.N)
				elapsed := time.Since(start)
				b.StopTimer()
				slices.Sort(latencies)
				b.ReportMetric(float64(b.N)/elapsed.Seconds(), "creates/s")
				b.ReportMetric(float64(percentile(latencies, 0.50).Microseconds())/1000, "p50-ms")
				b.ReportMetric(float64(percentile(latencies, 0.99).Microseconds())/1000, "p99-ms")
			})
		}
	}
}
