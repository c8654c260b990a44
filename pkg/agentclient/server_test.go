package agentclient_test

import (
	"errors"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/agentid/agentid/pkg/agentclient"
	"github.com/agentid/agentid/pkg/delegation"
	"github.com/agentid/agentid/pkg/server/servertest"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestServerCreateSubRevoke(t *testing.T) {
	f := newFixture(t)
	ctx := servertest.Ctx(t)
	root := f.delegate(t)
	if root.Agent != servertest.Orchestrator || root.CreatedBy != servertest.Orchestrator || root.User.Subject() != "alice" ||
		root.Scopes.String() != "campaigns:read compliance:check" {
		t.Fatalf("root %+v", root)
	}
	s := f.server(t)
	sub, err := s.CreateSubDelegation(ctx, agentclient.SubDelegationRequest{
		Parent: root.ID, Agent: servertest.Analyst, Scopes: []string{"campaigns:read"}, TTL: time.Hour, Intent: "summarise",
	})
	if err != nil {
		t.Fatal(err)
	}
	if sub.Parent != root.ID || sub.Root != root.ID || len(sub.Chain) != 2 || sub.Chain[1] != servertest.Analyst ||
		!sub.ExpiresAt.Equal(root.ExpiresAt) {
		t.Fatalf("sub %+v", sub)
	}
	rev, err := s.RevokeDelegation(ctx, root.ID, "task done")
	if err != nil {
		t.Fatal(err)
	}
	if len(rev.IDs) != 2 || rev.IDs[0] != root.ID || rev.IDs[1] != sub.ID || rev.Delegation.State != delegation.StateRevoked {
		t.Fatalf("revocation %+v", rev)
	}
}

// The agent reads back what it holds: one delegation by id, and its own
// delegations page by page and by state.
func TestServerGetList(t *testing.T) {
	f := newFixture(t)
	ctx := servertest.Ctx(t)
	s := f.server(t)
	a, b := f.delegate(t), f.delegate(t)
	got, err := s.GetDelegation(ctx, a.ID)
	if err != nil || got.ID != a.ID || got.Agent != servertest.Orchestrator || got.Scopes.String() != a.Scopes.String() ||
		!got.ExpiresAt.Equal(a.ExpiresAt) || got.State != delegation.StateActive {
		t.Fatalf("get: %+v, %v", got, err)
	}
	page, next, err := s.ListDelegations(ctx, agentclient.ListRequest{PageSize: 1})
	if err != nil || len(page) != 1 || page[0].ID != a.ID || next == "" {
		t.Fatalf("first page: %v, %q, %v", page, next, err)
	}
	page, last, err := s.ListDelegations(ctx, agentclient.ListRequest{PageSize: 1, PageToken: next})
	if err != nil || len(page) != 1 || page[0].ID != b.ID {
		t.Fatalf("second page: %v, %q, %v", page, last, err)
	}
	if _, err := s.RevokeDelegation(ctx, a.ID, "done"); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		state delegation.State
		want  []delegation.ID
	}{
		{delegation.StateActive, []delegation.ID{b.ID}},
		{delegation.StateRevoked, []delegation.ID{a.ID}},
		{delegation.StateExpired, nil},
		{delegation.StateUnspecified, []delegation.ID{a.ID, b.ID}},
	} {
		page, _, err := s.ListDelegations(ctx, agentclient.ListRequest{State: tt.state})
		var ids []delegation.ID
		for _, d := range page {
			ids = append(ids, d.ID)
		}
		if err != nil || !slices.Equal(ids, tt.want) {
			t.Fatalf("list %s: %v, %v; want %v", tt.state, ids, err, tt.want)
		}
	}
}

func TestServerErrors(t *testing.T) {
	f := newFixture(t)
	ctx := servertest.Ctx(t)
	root := f.delegate(t)
	s := f.server(t)
	tests := []struct {
		name     string
		call     func() error
		wantCode codes.Code
		wantErr  error
		wantText string
	}{
		{"no user token", func() error {
			_, err := s.CreateDelegation(ctx, agentclient.CreateRequest{Agent: servertest.Orchestrator, Scopes: []string{"a"}, TTL: time.Minute})
			return err
		}, codes.Unknown, agentclient.ErrInvalidRequest, "agentclient: invalid request: user token is required"},
		{"no agent", func() error {
			_, err := s.CreateDelegation(ctx, agentclient.CreateRequest{UserToken: "x", Scopes: []string{"a"}, TTL: time.Minute})
			return err
		}, codes.Unknown, agentclient.ErrInvalidRequest, "agentclient: invalid request: agent SPIFFE ID is required"},
		{"no scopes", func() error {
			_, err := s.CreateSubDelegation(ctx, agentclient.SubDelegationRequest{Parent: root.ID, Agent: servertest.Analyst, TTL: time.Minute})
			return err
		}, codes.Unknown, agentclient.ErrInvalidRequest, "agentclient: invalid request: at least one scope is required"},
		{"zero ttl", func() error {
			_, err := s.CreateSubDelegation(ctx, agentclient.SubDelegationRequest{Parent: root.ID, Agent: servertest.Analyst, Scopes: []string{"a"}})
			return err
		}, codes.Unknown, agentclient.ErrInvalidRequest, "agentclient: invalid request: ttl must be positive"},
		{"no parent", func() error {
			_, err := s.CreateSubDelegation(ctx, agentclient.SubDelegationRequest{Agent: servertest.Analyst, Scopes: []string{"a"}, TTL: time.Minute})
			return err
		}, codes.Unknown, agentclient.ErrInvalidRequest, "agentclient: invalid request: parent delegation id is required"},
		{"revoke zero id", func() error {
			_, err := s.RevokeDelegation(ctx, delegation.ID{}, "")
			return err
		}, codes.Unknown, agentclient.ErrInvalidRequest, "agentclient: invalid request: delegation id is required"},
		{"bad user token", func() error {
			_, err := s.CreateDelegation(ctx, agentclient.CreateRequest{UserToken: "not-a-jwt", Agent: servertest.Orchestrator, Scopes: []string{"campaigns:read"}, TTL: time.Minute})
			return err
		}, codes.Unauthenticated, nil, ""},
		{"sub-agent not allowed", func() error {
			_, err := s.CreateSubDelegation(ctx, agentclient.SubDelegationRequest{Parent: root.ID, Agent: servertest.Writer, Scopes: []string{"campaigns:read"}, TTL: time.Minute})
			return err
		}, codes.PermissionDenied, nil, ""},
		{"get zero id", func() error {
			_, err := s.GetDelegation(ctx, delegation.ID{})
			return err
		}, codes.Unknown, agentclient.ErrInvalidRequest, "agentclient: invalid request: delegation id is required"},
		{"list negative page size", func() error {
			_, _, err := s.ListDelegations(ctx, agentclient.ListRequest{PageSize: -1})
			return err
		}, codes.Unknown, agentclient.ErrInvalidRequest, "agentclient: invalid request: page size -1 out of range"},
		{"list unknown state", func() error {
			_, _, err := s.ListDelegations(ctx, agentclient.ListRequest{State: delegation.State(42)})
			return err
		}, codes.Unknown, agentclient.ErrInvalidRequest, "agentclient: invalid request: unknown state 42"},
		{"get unknown id", func() error {
			_, err := s.GetDelegation(ctx, delegation.MustParseID("dlg_01jd0000000000000000000000"))
			return err
		}, codes.NotFound, nil, ""},
		{"list with a token of another listing", func() error {
			_, _, err := s.ListDelegations(ctx, agentclient.ListRequest{PageToken: "not a token"})
			return err
		}, codes.InvalidArgument, nil, ""},
		{"unknown parent", func() error {
			_, err := s.CreateSubDelegation(ctx, agentclient.SubDelegationRequest{Parent: delegation.MustParseID("dlg_01jd0000000000000000000000"), Agent: servertest.Analyst, Scopes: []string{"campaigns:read"}, TTL: time.Minute})
			return err
		}, codes.NotFound, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if err == nil {
				t.Fatal("no error")
			}
			if status.Code(err) != tt.wantCode {
				t.Fatalf("code = %v, want %v (%v)", status.Code(err), tt.wantCode, err)
			}
			if tt.wantErr != nil && (!errors.Is(err, tt.wantErr) || err.Error() != tt.wantText) {
				t.Fatalf("err = %v, want %s", err, tt.wantText)
			}
		})
	}
}

func TestServerWrongSPIFFEID(t *testing.T) {
	f := newFixture(t)
	s, err := f.agent.DialServer(f.env.MTLSAddr, servertest.Stranger)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_, err = s.CreateDelegation(servertest.Ctx(t), agentclient.CreateRequest{
		UserToken: f.env.AliceToken(t), Agent: servertest.Orchestrator, Scopes: []string{"campaigns:read"}, TTL: time.Minute,
	})
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("err = %v, want Unavailable from a failed handshake", err)
	}
	// grpc-go gives the handshake's failure as text only; callError makes it
	// a refused peer again, so callers can tell it from a server that is down.
	if !errors.Is(err, agentclient.ErrPeerNotAuthorized) {
		t.Fatalf("err = %v, want it to match ErrPeerNotAuthorized", err)
	}
	if got := errorsMention(err, "agentclient: peer SPIFFE ID not authorized: spiffe://example.org/agentid-server"); !got {
		t.Fatalf("err = %v, want the refused server ID named", err)
	}
}

func TestDialServerValidates(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		name   string
		config agentclient.ServerConfig
		want   string
	}{
		{"no address", agentclient.ServerConfig{ServerID: servertest.ServerID, SVIDs: f.agent.SVIDs(), Bundles: f.agent.Bundles()},
			"agentclient: invalid config: server address is required"},
		{"no server id", agentclient.ServerConfig{Address: "x:1", SVIDs: f.agent.SVIDs(), Bundles: f.agent.Bundles()},
			"agentclient: invalid config: server SPIFFE ID is required"},
		{"no sources", agentclient.ServerConfig{Address: "x:1", ServerID: servertest.ServerID},
			"agentclient: invalid config: X509-SVID and bundle sources are required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := agentclient.DialServer(tt.config); err == nil || err.Error() != tt.want {
				t.Fatalf("err = %v, want %s", err, tt.want)
			}
		})
	}
}

// A server that is down is Unavailable and is not a refused peer.
func TestServerDownIsNotARefusedPeer(t *testing.T) {
	f := newFixture(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there any more
	s, err := f.agent.DialServer(addr, servertest.ServerID)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_, err = s.CreateDelegation(servertest.Ctx(t), agentclient.CreateRequest{
		UserToken: f.env.AliceToken(t), Agent: servertest.Orchestrator, Scopes: []string{"campaigns:read"}, TTL: time.Minute,
	})
	if status.Code(err) != codes.Unavailable || errors.Is(err, agentclient.ErrPeerNotAuthorized) {
		t.Fatalf("err = %v, want Unavailable and not ErrPeerNotAuthorized", err)
	}
}
