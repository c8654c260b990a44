package agentclient_test

import (
	"context"
	"fmt"
	"io"
	"net/http"

	"github.com/agentid/agentid/pkg/agentclient"
	"github.com/agentid/agentid/pkg/delegation"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// An agent calls a service for a user: the request's context names the
// delegation, the transport attaches the matching JWT-SVID.
func ExampleTransport() {
	ctx := context.Background()
	agent, err := agentclient.New(ctx, agentclient.Config{WorkloadAPIAddr: "unix:///run/spire/agent.sock"})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer agent.Close()
	crm := spiffeid.RequireFromString("spiffe://example.org/svc/crm")
	tr, err := agent.Transport(crm, "")
	if err != nil {
		fmt.Println(err)
		return
	}
	client := &http.Client{Transport: tr}
	id := delegation.MustParseID("dlg_01jd0000000000000000000000") // from CreateDelegation
	req, _ := http.NewRequestWithContext(agentclient.WithDelegation(ctx, id), "GET", "https://crm.example.org:8443/campaigns", nil)
	resp, err := client.Do(req)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Println(string(body))
}
