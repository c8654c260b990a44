package spireapi_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/agentid/agentid/pkg/spireapi"
	"github.com/agentid/agentid/pkg/spireapi/spireapitest"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/spire-api-sdk/proto/spire/api/types"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

var (
	td       = spiffeid.RequireTrustDomainFromString("example.org")
	parentID = spiffeid.RequireFromPath(td, "/spire/agent/join_token/node1")
)

// startServer runs a fake SPIRE server and returns it with a client dialled
// to it; both are closed when the test ends.
func startServer(tb testing.TB) (*spireapitest.Server, *spireapi.Client) {
	tb.Helper()
	srv := spireapitest.New(tb, td)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client, err := spireapi.Dial(ctx, srv.SocketPath())
	if err != nil {
		tb.Fatalf("Dial: %v", err)
	}
	tb.Cleanup(func() { client.Close() })
	return srv, client
}

func workloadEntry(id, path string, selectors ...string) spireapi.Entry {
	e := spireapi.Entry{
		ID:       id,
		SPIFFEID: spiffeid.RequireFromPath(td, path),
		ParentID: parentID,
	}
	for _, s := range selectors {
		typ, value, _ := strings.Cut(s, ":")
		e.Selectors = append(e.Selectors, spireapi.Selector{Type: typ, Value: value})
	}
	return e
}

func TestDial(t *testing.T) {
	canceled, cancel := context.WithCancel(context.Background())
	cancel()

	_, err := spireapi.Dial(context.Background(), "")
	if got, want := fmt.Sprint(err), "spireapi: socket path is empty"; got != want {
		t.Errorf("Dial(\"\") error = %q, want %q", got, want)
	}

	missing := t.TempDir() + "/missing.sock"
	_, err = spireapi.Dial(canceled, missing)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Dial(no server) error = %v, want context.Canceled", err)
	}
	if prefix := fmt.Sprintf("spireapi: failed to dial API socket %q (connection ", missing); !strings.HasPrefix(fmt.Sprint(err), prefix) {
		t.Errorf("Dial(no server) error = %q, want prefix %q", err, prefix)
	}
}

func TestCreateEntries(t *testing.T) {
	srv, client := startServer(t)
	ctx := context.Background()
	foreign := srv.AddEntry(&types.Entry{
		Id:        "human-made",
		SpiffeId:  &types.SPIFFEID{TrustDomain: "example.org", Path: "/taken"},
		ParentId:  &types.SPIFFEID{TrustDomain: "example.org", Path: parentID.Path()},
		Selectors: []*types.Selector{{Type: "unix", Value: "uid:0"}, {Type: "aiagent", Value: "name:x"}},
	})

	for _, tt := range []struct {
		name      string
		entry     spireapi.Entry
		code      codes.Code
		message   string
		entryID   string // ID of Status.Entry; "" when none is expected
		storedTTL time.Duration
	}{
		{
			name:    "caller-chosen id is kept",
			entry:   withTTL(workloadEntry("agentid-a", "/agent/a", "aiagent:name:a"), 300*time.Second),
			code:    codes.OK,
			message: "OK",
			entryID: "agentid-a",
		},
		{
			name:    "similar entry answers already exists with the existing entry",
			entry:   workloadEntry("agentid-b", "/taken", "aiagent:name:x", "unix:uid:0"),
			code:    codes.AlreadyExists,
			message: "similar entry already exists",
			entryID: foreign.Id,
		},
		{
			name:    "taken id answers already exists without an entry",
			entry:   workloadEntry("human-made", "/other", "aiagent:name:other"),
			code:    codes.AlreadyExists,
			message: "failed to create entry: datastore-sql: UNIQUE constraint failed: registered_entries.entry_id",
		},
		{
			name:    "id outside SPIRE's charset",
			entry:   workloadEntry("agentid-a/b", "/agent/c", "aiagent:name:c"),
			code:    codes.InvalidArgument,
			message: "failed to create entry: datastore-validation: invalid registration entry: entry ID contains invalid characters",
		},
		{
			name:    "id too long",
			entry:   workloadEntry(strings.Repeat("a", 256), "/agent/d", "aiagent:name:d"),
			code:    codes.InvalidArgument,
			message: "failed to create entry: datastore-validation: invalid registration entry: entry ID too long",
		},
		{
			name:    "SPIFFE ID in the reserved namespace",
			entry:   workloadEntry("agentid-e", "/spire/e", "aiagent:name:e"),
			code:    codes.InvalidArgument,
			message: `failed to convert entry: invalid spiffe ID: "spiffe://example.org/spire/e" is not a workload in trust domain "example.org"; path is in the reserved namespace`,
		},
		{
			name:    "no selectors",
			entry:   workloadEntry("agentid-f", "/agent/f"),
			code:    codes.InvalidArgument,
			message: "failed to convert entry: selector list is empty",
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			sts, err := client.CreateEntries(ctx, []spireapi.Entry{tt.entry})
			if err != nil {
				t.Fatalf("CreateEntries: %v", err)
			}
			if len(sts) != 1 {
				t.Fatalf("CreateEntries returned %d statuses, want 1", len(sts))
			}
			st := sts[0]
			if st.Code != tt.code || st.Message != tt.message {
				t.Errorf("status = %s %q, want %s %q", st.Code, st.Message, tt.code, tt.message)
			}
			if got := status.Code(st.Err()); got != tt.code {
				t.Errorf("status.Code(Err()) = %s, want %s", got, tt.code)
			}
			switch {
			case tt.entryID == "" && st.Entry != nil:
				t.Errorf("status carries entry %q, want none", st.Entry.ID)
			case tt.entryID != "" && st.Entry == nil:
				t.Errorf("status carries no entry, want %q", tt.entryID)
			case tt.entryID != "" && st.Entry.ID != tt.entryID:
				t.Errorf("status carries entry %q, want %q", st.Entry.ID, tt.entryID)
			}
		})
	}
}

func withTTL(e spireapi.Entry, ttl time.Duration) spireapi.Entry {
	e.X509SVIDTTL = ttl
	e.JWTSVIDTTL = ttl / 2
	return e
}

func TestEntryRoundTrip(t *testing.T) {
	_, client := startServer(t)
	ctx := context.Background()
	want := spireapi.Entry{
		ID:            "agentid-full",
		SPIFFEID:      spiffeid.RequireFromPath(td, "/agent/full"),
		ParentID:      parentID,
		Selectors:     []spireapi.Selector{{Type: "aiagent", Value: "name:full"}, {Type: "unix", Value: "uid:1000"}},
		X509SVIDTTL:   3600 * time.Second,
		JWTSVIDTTL:    300 * time.Second,
		FederatesWith: []spiffeid.TrustDomain{spiffeid.RequireTrustDomainFromString("partner.example")},
		Admin:         true,
		Downstream:    true,
		DNSNames:      []string{"full.example.org"},
		Hint:          "full",
		ExpiresAt:     time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC),
	}
	sts, err := client.CreateEntries(ctx, []spireapi.Entry{want})
	if err != nil || sts[0].Code != codes.OK {
		t.Fatalf("CreateEntries = %v, %v", sts, err)
	}
	got, err := client.ListEntries(ctx)
	if err != nil {
		t.Fatalf("ListEntries: %v", err)
	}
	if len(got) != 1 {
		t.Fatalf("ListEntries returned %d entries, want 1", len(got))
	}
	if got[0].CreatedAt.IsZero() {
		t.Errorf("CreatedAt is zero, want the time SPIRE stored")
	}
	got[0].CreatedAt = time.Time{}
	if !reflect.DeepEqual(got[0], want) {
		t.Errorf("listed entry\n got %+v\nwant %+v", got[0], want)
	}

	want.Admin = false
	want.Selectors = want.Selectors[:1]
	sts, err = client.UpdateEntries(ctx, []spireapi.Entry{want})
	if err != nil || sts[0].Code != codes.OK {
		t.Fatalf("UpdateEntries = %v, %v", sts, err)
	}
	if sts[0].Entry == nil || sts[0].Entry.RevisionNumber != 1 || sts[0].Entry.Admin || len(sts[0].Entry.Selectors) != 1 {
		t.Errorf("updated entry = %+v, want revision 1, not admin, one selector", sts[0].Entry)
	}
}

func TestUpdateAndDeleteStatuses(t *testing.T) {
	_, client := startServer(t)
	ctx := context.Background()
	if _, err := client.CreateEntries(ctx, []spireapi.Entry{workloadEntry("agentid-x", "/agent/x", "aiagent:name:x")}); err != nil {
		t.Fatal(err)
	}

	sts, err := client.UpdateEntries(ctx, []spireapi.Entry{
		workloadEntry("agentid-x", "/agent/x", "aiagent:name:x2"),
		workloadEntry("agentid-missing", "/agent/m", "aiagent:name:m"),
	})
	if err != nil {
		t.Fatalf("UpdateEntries: %v", err)
	}
	assertStatuses(t, "UpdateEntries", sts, []spireapi.Status{
		{Code: codes.OK, Message: "OK"},
		{Code: codes.NotFound, Message: "failed to update entry"},
	})

	sts, err = client.DeleteEntries(ctx, []string{"agentid-x", "agentid-x", ""})
	if err != nil {
		t.Fatalf("DeleteEntries: %v", err)
	}
	assertStatuses(t, "DeleteEntries", sts, []spireapi.Status{
		{Code: codes.OK, Message: "OK"},
		{Code: codes.NotFound, Message: "entry not found"},
		{Code: codes.InvalidArgument, Message: "missing entry ID"},
	})
}

func assertStatuses(t *testing.T, call string, got, want []spireapi.Status) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s returned %d statuses, want %d", call, len(got), len(want))
	}
	for i := range want {
		if got[i].Code != want[i].Code || got[i].Message != want[i].Message {
			t.Errorf("%s status %d = %s %q, want %s %q", call, i, got[i].Code, got[i].Message, want[i].Code, want[i].Message)
		}
	}
}

func TestBatchingAndPaging(t *testing.T) {
	srv, client := startServer(t)
	ctx := context.Background()
	const n = 450
	var entries []spireapi.Entry
	var ids []string
	for i := range n {
		id := fmt.Sprintf("agentid-%03d", i)
		entries = append(entries, workloadEntry(id, "/agent/"+id, "aiagent:name:"+id))
		ids = append(ids, id)
	}

	sts, err := client.CreateEntries(ctx, entries)
	if err != nil || len(sts) != n {
		t.Fatalf("CreateEntries = %d statuses, %v", len(sts), err)
	}
	updated, err := client.UpdateEntries(ctx, entries[:120])
	if err != nil || len(updated) != 120 {
		t.Fatalf("UpdateEntries = %d statuses, %v", len(updated), err)
	}
	got, err := client.ListEntries(ctx)
	if err != nil {
		t.Fatalf("ListEntries: %v", err)
	}
	if len(got) != n || got[0].ID != ids[0] || got[n-1].ID != ids[n-1] {
		t.Fatalf("ListEntries returned %d entries, want %d in creation order", len(got), n)
	}
	if sts, err := client.DeleteEntries(ctx, ids); err != nil || len(sts) != n {
		t.Fatalf("DeleteEntries = %d statuses, %v", len(sts), err)
	}

	want := spireapitest.Calls{
		BatchCreateEntry: 9, // 50 per call
		BatchUpdateEntry: 3, // 50 per call
		ListEntries:      4, // 200, 200, 50, and the empty last page
		BatchDeleteEntry: 3, // 200 per call
		Created:          n,
		Updated:          120,
		Deleted:          n,
	}
	if got := srv.Calls(); got != want {
		t.Errorf("calls\n got %+v\nwant %+v", got, want)
	}
}

func TestWritesRefuseInexactTTLs(t *testing.T) {
	srv, client := startServer(t)
	ctx := context.Background()
	for _, tt := range []struct {
		name  string
		entry spireapi.Entry
		want  string
	}{
		{
			name:  "sub-second X509-SVID TTL",
			entry: withTTL(workloadEntry("agentid-a", "/a", "aiagent:name:a"), 1500*time.Millisecond),
			want:  `spireapi: entry "agentid-a": X509-SVID TTL 1.5s is not a whole number of seconds between 0 and 2147483647`,
		},
		{
			name: "negative JWT-SVID TTL",
			entry: func() spireapi.Entry {
				e := workloadEntry("agentid-b", "/b", "aiagent:name:b")
				e.JWTSVIDTTL = -time.Second
				return e
			}(),
			want: `spireapi: entry "agentid-b": JWT-SVID TTL -1s is not a whole number of seconds between 0 and 2147483647`,
		},
		{
			name: "TTL beyond int32 seconds",
			entry: func() spireapi.Entry {
				e := workloadEntry("agentid-c", "/c", "aiagent:name:c")
				e.X509SVIDTTL = (1 << 31) * time.Second
				return e
			}(),
			want: `spireapi: entry "agentid-c": X509-SVID TTL 596523h14m8s is not a whole number of seconds between 0 and 2147483647`,
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := client.CreateEntries(ctx, []spireapi.Entry{tt.entry})
			if fmt.Sprint(err) != tt.want {
				t.Errorf("CreateEntries error = %v, want %q", err, tt.want)
			}
			_, err = client.UpdateEntries(ctx, []spireapi.Entry{tt.entry})
			if fmt.Sprint(err) != tt.want {
				t.Errorf("UpdateEntries error = %v, want %q", err, tt.want)
			}
		})
	}
	if got := srv.Calls().Writes(); got != 0 {
		t.Errorf("%d write calls reached the server, want 0", got)
	}
}

func TestServerDown(t *testing.T) {
	srv, client := startServer(t)
	srv.Stop()
	_, err := client.ListEntries(context.Background())
	if got := status.Code(errors.Unwrap(err)); got != codes.Unavailable {
		t.Errorf("ListEntries with the server down: code %s (%v), want Unavailable", got, err)
	}
	if !strings.HasPrefix(fmt.Sprint(err), "spireapi: failed to list entries: ") {
		t.Errorf("ListEntries error = %q, want the spireapi prefix", err)
	}
}
