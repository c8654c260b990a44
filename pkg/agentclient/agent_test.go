package agentclient_test

import (
	"errors"
	"testing"

	"github.com/agentid/agentid/pkg/agentclient"
	"github.com/agentid/agentid/pkg/agentclient/agentclienttest"
	"github.com/agentid/agentid/pkg/server/servertest"
)

func TestNewPinnedIDNotOffered(t *testing.T) {
	env := servertest.Start(t)
	auth := agentclienttest.NewAuthority(t, agentclienttest.AuthorityConfig{CA: env.CA})
	wl := auth.Serve(t, servertest.Orchestrator)
	want := mustID(t, "spiffe://example.org/agent/other")
	a, err := agentclient.New(servertest.Ctx(t), agentclient.Config{WorkloadAPIAddr: wl.Addr, ID: want})
	if err == nil {
		a.Close()
		t.Fatal("New took an identity other than the pinned one")
	}
	if !errors.Is(err, agentclient.ErrNoIdentity) || err.Error() != "agentclient: no identity issued for this workload: the Workload API does not offer spiffe://example.org/agent/other" {
		t.Fatalf("err = %v", err)
	}
}
