package grpcmw_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"testing"

	"github.com/agentid/agentid/pkg/verify"
	"github.com/agentid/agentid/pkg/verify/grpcmw"
	"github.com/agentid/agentid/pkg/verify/internal/testca"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// exampleTB lets the example use the test CA outside a test.
type exampleTB struct{ testing.TB }

func (exampleTB) Helper()                   {}
func (exampleTB) Fatal(args ...any)         { panic(fmt.Sprint(args...)) }
func (exampleTB) Fatalf(f string, a ...any) { panic(fmt.Sprintf(f, a...)) }

func ExampleInterceptors() {
	env := testca.NewEnv(exampleTB{})
	v, err := verify.New(env.Config())
	if err != nil {
		panic(err)
	}
	ic, err := grpcmw.New(grpcmw.Config{
		Verifier: v,
		MethodRequire: map[string][]verify.Requirement{
			"/crm.v1.Campaigns/Delete": {verify.RequireScopes("crm:write")},
		},
	})
	if err != nil {
		panic(err)
	}
	// In a service:
	//	grpc.NewServer(grpc.Creds(credentials.NewTLS(verify.ServerTLSConfig(...))),
	//		grpc.UnaryInterceptor(ic.Unary()), grpc.StreamInterceptor(ic.Stream()))
	handler := func(ctx context.Context, _ any) (any, error) {
		p, _ := grpcmw.PrincipalFrom(ctx)
		return p.Agent.String() + " for " + p.User.Subject(), nil
	}

	// What the server sees for a call from the market-analysis agent: its
	// verified X509-SVID on the connection, its token in the metadata.
	svid := env.CA.X509SVID(exampleTB{}, env.Analyst)
	ctx := peer.NewContext(context.Background(), &peer.Peer{
		AuthInfo: credentials.TLSInfo{State: tls.ConnectionState{PeerCertificates: svid.Certificates}},
	})
	ctx = metadata.NewIncomingContext(ctx, metadata.Pairs("authorization", "Bearer "+env.Good(exampleTB{})))
	for _, method := range []string{"/crm.v1.Campaigns/List", "/crm.v1.Campaigns/Delete"} {
		res, err := ic.Unary()(ctx, nil, &grpc.UnaryServerInfo{FullMethod: method}, handler)
		if err != nil {
			st := status.Convert(err)
			fmt.Println(method, st.Code(), st.Message())
			continue
		}
		fmt.Println(method, res)
	}
	// Output:
	// /crm.v1.Campaigns/List spiffe://example.org/agent/market-analysis for alice
	// /crm.v1.Campaigns/Delete PermissionDenied verify: insufficient scope: missing crm:write
}
