package reconciler_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/agentid/agentid/pkg/reconciler"
	"github.com/agentid/agentid/pkg/spireapi"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// Declare one agent and keep SPIRE in line with it until ctx ends.
func Example() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	dialCtx, dialCancel := context.WithTimeout(ctx, 30*time.Second)
	defer dialCancel()
	client, err := spireapi.Dial(dialCtx, "/tmp/spire-server/private/api.sock")
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	rec, err := reconciler.New(reconciler.Config{
		Client:     client,
		Registerer: prometheus.NewRegistry(),
		OnSync: func(name string, st reconciler.SyncState) {
			fmt.Println(name, st.State, st.EntryID, st.LastError)
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := rec.SetAgents([]reconciler.Agent{{
		Name:       "gdpr-compliance",
		SPIFFEID:   spiffeid.RequireFromString("spiffe://example.org/agent/gdpr-compliance"),
		ParentID:   spiffeid.RequireFromString("spiffe://example.org/spire/agent/join_token/node1"),
		Selectors:  []spireapi.Selector{{Type: "aiagent", Value: "name:gdpr-compliance"}},
		JWTSVIDTTL: 5 * time.Minute,
	}}); err != nil {
		log.Fatal(err)
	}
	if err := rec.Run(ctx); err != nil {
		log.Fatal(err)
	}
}
