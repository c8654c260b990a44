package delegation_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	delegationv1 "github.com/agentid/agentid/proto/agentid/delegation/v1"
	"google.golang.org/protobuf/types/known/durationpb"
)

// BenchmarkCreateDelegation measures CreateDelegation over the unix socket,
// user token signature check (JWKS cached) and policy included, from 16
// concurrent callers; it reports throughput and the p50/p99 of one call.
//
//	go test -run '^$' -bench CreateDelegation -benchtime 5000x ./pkg/server/api/delegation/v1
func BenchmarkCreateDelegation(b *testing.B) {
	e := newEnv(b)
	loc := e.Local(b)
	tok := e.AliceToken(b)
	req := &delegationv1.CreateDelegationRequest{UserToken: tok, AgentId: orchestrator.String(),
		Scopes: []string{"campaigns:read"}, Ttl: durationpb.New(time.Hour), Intent: "benchmark"}
	if _, err := loc.Delegations.CreateDelegation(ctxT(b), req); err != nil { // warm the JWKS cache
		b.Fatal(err)
	}
	var mu sync.Mutex
	var lat []time.Duration
	b.SetParallelism(8) // 8 × GOMAXPROCS(2) = 16 callers
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		var mine []time.Duration
		for pb.Next() {
			t0 := time.Now()
			if _, err := loc.Delegations.CreateDelegation(ctxT(b), req); err != nil {
				b.Error(err)
				return
			}
			mine = append(mine, time.Since(t0))
		}
		mu.Lock()
		lat = append(lat, mine...)
		mu.Unlock()
	})
	elapsed := time.Since(start)
	b.StopTimer()
	reportLatency(b, lat)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "creates/s")
}

func reportLatency(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}

// BenchmarkRevocationToWatcher measures the time from a RevokeDelegation
// call to the REVOKED change arriving on a WatchDelegations stream.
//
//	go test -run '^$' -bench RevocationToWatcher -benchtime 500x ./pkg/server/api/delegation/v1
func BenchmarkRevocationToWatcher(b *testing.B) {
	e := newEnv(b)
	loc, front := e.Local(b), e.As(b, frontend)
	tok := e.AliceToken(b)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, err := e.As(b, verifierID).Delegations.WatchDelegations(ctx, &delegationv1.WatchDelegationsRequest{RevokedOnly: true})
	if err != nil {
		b.Fatal(err)
	}
	recv(b, s) // snapshot_end
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		d := create(b, front, tok, orchestrator.String(), time.Hour, "campaigns:read")
		b.StartTimer()
		t0 := time.Now()
		if _, err := loc.Delegations.RevokeDelegation(ctxT(b), &delegationv1.RevokeDelegationRequest{Id: d.Id}); err != nil {
			b.Fatal(err)
		}
		for {
			m := recv(b, s)
			if ch := m.GetChange(); ch != nil && ch.Delegation.Id == d.Id {
				break
			}
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	reportLatency(b, lat)
}
