package extauthz_test

import (
	"context"
	"testing"

	"github.com/agentid/agentid/pkg/verify"
	"github.com/agentid/agentid/pkg/verify/extauthz"
	"github.com/agentid/agentid/pkg/verify/internal/testca"
	"google.golang.org/grpc/codes"
)

// FuzzCheck feeds arbitrary authorization headers, paths and source
// principals to Check: it must not panic, must always answer (never a gRPC
// error), and may allow only the one genuine token on a covered route.
func FuzzCheck(f *testing.F) {
	env := testca.NewEnv(f)
	v, err := verify.New(env.Config())
	if err != nil {
		f.Fatal(err)
	}
	s, err := extauthz.New(extauthz.Config{Verifier: v, Rules: rules})
	if err != nil {
		f.Fatal(err)
	}
	good := "Bearer " + env.Good(f)
	f.Add(good, "/campaigns?x=1", env.Analyst.String())
	f.Add("Bearer a.b.c", "/crm/1", env.Orchestrator.String())
	f.Add("bearer  x", "", "spiffe://")
	f.Add(good+","+good, "/campaigns", env.Analyst.String())
	f.Fuzz(func(t *testing.T, auth, path, principal string) {
		req := envoyCheck(env.Analyst, "GET", path, map[string]string{"authorization": auth})
		req.Attributes.Source.Principal = principal
		res, err := s.Check(context.Background(), req)
		if err != nil || res == nil {
			t.Fatalf("Check returned %v, %v", res, err)
		}
		if codes.Code(res.GetStatus().GetCode()) == codes.OK && (auth != good || principal != env.Analyst.String()) {
			t.Fatalf("allowed auth %q principal %q path %q", auth, principal, path)
		}
	})
}

func BenchmarkCheck(b *testing.B) {
	env := testca.NewEnv(b)
	v, err := verify.New(env.Config())
	if err != nil {
		b.Fatal(err)
	}
	s, err := extauthz.New(extauthz.Config{Verifier: v, Rules: rules})
	if err != nil {
		b.Fatal(err)
	}
	req := envoyCheck(env.Analyst, "GET", "/campaigns/42", map[string]string{"authorization": "Bearer " + env.Good(b)})
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		res, err := s.Check(ctx, req)
		if err != nil || res.GetOkResponse() == nil {
			b.Fatal(res, err)
		}
	}
}
