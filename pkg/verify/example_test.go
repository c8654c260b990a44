package verify_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/agentid/agentid/pkg/verify"
	"github.com/agentid/agentid/pkg/verify/internal/testca"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// exampleTB lets the examples use the test CA outside a test.
type exampleTB struct{ testing.TB }

func (exampleTB) Helper()                   {}
func (exampleTB) Fatal(args ...any)         { panic(fmt.Sprint(args...)) }
func (exampleTB) Fatalf(f string, a ...any) { panic(fmt.Sprintf(f, a...)) }

func ExampleVerifier_Verify() {
	// A trust domain with a JWT authority, and a delegated token the
	// market-analysis agent got from SPIRE for the CRM service. In a service
	// the bundles come from the Workload API (workloadapi.NewJWTSource).
	env := testca.NewEnv(exampleTB{})
	token := env.Good(exampleTB{})

	v, err := verify.New(verify.Config{
		Bundles:      env.Bundles,
		Audiences:    []string{"spiffe://example.org/svc/crm"},
		TrustDomains: []spiffeid.TrustDomain{spiffeid.RequireTrustDomainFromString("example.org")},
		Revocation:   env.Revocations,
	})
	if err != nil {
		panic(err)
	}

	// The peer is the SPIFFE ID of the caller's X509-SVID (verify.PeerID).
	peer := spiffeid.RequireFromString("spiffe://example.org/agent/market-analysis")
	p, err := v.Verify(peer, token)
	if err != nil {
		fmt.Println("refused:", err)
		return
	}
	fmt.Println("agent:", p.Agent)
	fmt.Println("user:", p.User.Issuer(), p.User.Subject())
	fmt.Println("scopes:", p.Scopes)
	fmt.Println("chain:", p.Delegation.Chain)

	// Authorize on both identities.
	err = p.Check(
		verify.RequireAgentPrefix(spiffeid.RequireFromString("spiffe://example.org/agent")),
		verify.RequireScopes("campaigns:read"),
		verify.RequireUser("https://idp.example.com"),
	)
	fmt.Println("campaigns:read allowed:", err == nil)
	fmt.Println("crm:write:", p.Check(verify.RequireScopes("crm:write")))
	// Output:
	// agent: spiffe://example.org/agent/market-analysis
	// user: https://idp.example.com alice
	// scopes: campaigns:read compliance:check
	// chain: [spiffe://example.org/agent/orchestrator spiffe://example.org/agent/market-analysis]
	// campaigns:read allowed: true
	// crm:write: verify: insufficient scope: missing crm:write
}

func ExampleClassOf() {
	env := testca.NewEnv(exampleTB{})
	v := env.Verifier(exampleTB{})

	// The orchestrator presents the market-analysis agent's token: a stolen
	// or relayed token, refused whatever its signature.
	_, err := v.Verify(env.Orchestrator, env.Good(exampleTB{}))
	fmt.Println(errors.Is(err, verify.ErrPeerMismatch), verify.ClassOf(err) == verify.ClassUnauthenticated)
	// Output: true true
}
