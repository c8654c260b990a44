package spireapitest_test

import (
	"context"
	"regexp"
	"testing"
	"time"

	"github.com/agentid/agentid/pkg/spireapi/spireapitest"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	entryv1 "github.com/spiffe/spire-api-sdk/proto/spire/api/server/entry/v1"
	"github.com/spiffe/spire-api-sdk/proto/spire/api/types"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

var td = spiffeid.RequireTrustDomainFromString("example.org")

func dial(tb testing.TB, srv *spireapitest.Server) entryv1.EntryClient {
	tb.Helper()
	conn, err := grpc.NewClient("unix://"+srv.SocketPath(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { conn.Close() })
	return entryv1.NewEntryClient(conn)
}

func entry(id, path string, sels ...string) *types.Entry {
	e := &types.Entry{
		Id:       id,
		SpiffeId: &types.SPIFFEID{TrustDomain: td.Name(), Path: path},
		ParentId: &types.SPIFFEID{TrustDomain: td.Name(), Path: "/node"},
	}
	for i := 0; i+1 < len(sels); i += 2 {
		e.Selectors = append(e.Selectors, &types.Selector{Type: sels[i], Value: sels[i+1]})
	}
	return e
}

func TestListPaging(t *testing.T) {
	srv := spireapitest.New(t, td)
	client := dial(t, srv)
	ctx := context.Background()
	for _, p := range []string{"/a", "/b", "/c"} {
		srv.AddEntry(entry("", p, "unix", "uid:0"))
	}

	var pages [][]string
	token := ""
	for {
		resp, err := client.ListEntries(ctx, &entryv1.ListEntriesRequest{PageSize: 2, PageToken: token})
		if err != nil {
			t.Fatal(err)
		}
		var page []string
		for _, e := range resp.Entries {
			page = append(page, e.SpiffeId.Path)
		}
		pages = append(pages, page)
		if token = resp.NextPageToken; token == "" {
			break
		}
	}
	if got, want := len(pages), 3; got != want || len(pages[0]) != 2 || len(pages[1]) != 1 || len(pages[2]) != 0 {
		t.Errorf("pages = %q, want [[/a /b] [/c] []] (SPIRE ends with an empty page)", pages)
	}

	_, err := client.ListEntries(ctx, &entryv1.ListEntriesRequest{PageSize: 2, PageToken: "x"})
	if st := status.Convert(err); st.Code() != codes.Internal || st.Message() != "failed to list entries: could not parse token 'x'" {
		t.Errorf("bad token: %v", err)
	}
}

func TestCreateAssignsUUIDAndMatchesSimilarAsSet(t *testing.T) {
	srv := spireapitest.New(t, td)
	client := dial(t, srv)
	first := srv.AddEntry(entry("", "/a", "unix", "uid:0", "unix", "gid:0"))
	if !regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`).MatchString(first.Id) {
		t.Errorf("assigned id %q is not a version 4 UUID", first.Id)
	}
	resp, err := client.BatchCreateEntry(context.Background(), &entryv1.BatchCreateEntryRequest{
		Entries: []*types.Entry{entry("mine", "/a", "unix", "gid:0", "unix", "uid:0")},
	})
	if err != nil {
		t.Fatal(err)
	}
	r := resp.Results[0]
	if codes.Code(r.Status.Code) != codes.AlreadyExists || r.Entry.GetId() != first.Id {
		t.Errorf("create of a similar entry = %v, want ALREADY_EXISTS with %q", r, first.Id)
	}
}

func TestUpdateWithMaskAndRestart(t *testing.T) {
	srv := spireapitest.New(t, td)
	client := dial(t, srv)
	ctx := context.Background()
	e := entry("e1", "/a", "unix", "uid:0")
	e.X509SvidTtl = 60
	srv.AddEntry(e)

	// Only the JWT-SVID TTL is in the mask: the empty selectors and SPIFFE ID
	// of the request are not applied.
	resp, err := client.BatchUpdateEntry(ctx, &entryv1.BatchUpdateEntryRequest{
		Entries:   []*types.Entry{{Id: "e1", JwtSvidTtl: 30}},
		InputMask: &types.EntryMask{JwtSvidTtl: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	got := resp.Results[0].Entry
	if got.JwtSvidTtl != 30 || got.X509SvidTtl != 60 || len(got.Selectors) != 1 || got.RevisionNumber != 1 {
		t.Errorf("masked update = %v, want JWT TTL 30, the rest kept, revision 1", got)
	}

	srv.Stop()
	srv.Start()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	// The client may still hold the connection the restart closed: an RPC
	// sent on it fails with Unavailable before gRPC notices, so retry that
	// (and only that) until the deadline.
	var list *entryv1.ListEntriesResponse
	for {
		list, err = client.ListEntries(ctx, &entryv1.ListEntriesRequest{}, grpc.WaitForReady(true))
		if status.Code(err) != codes.Unavailable || ctx.Err() != nil {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Entries) != 1 || list.Entries[0].JwtSvidTtl != 30 {
		t.Errorf("entries after restart = %v, want e1 kept", list.Entries)
	}
}
