package delegationv1_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	delegationv1 "github.com/agentid/agentid/proto/agentid/delegation/v1"
)

// watchServer is a stand-in for agentid-server's WatchDelegations: its log
// retains changes after revision 4 only, its snapshot is taken at revision 5,
// and one revocation (revision 6) follows.
type watchServer struct {
	delegationv1.UnimplementedDelegationServiceServer
}

func (watchServer) WatchDelegations(req *delegationv1.WatchDelegationsRequest, stream delegationv1.DelegationService_WatchDelegationsServer) error {
	const oldestRetained, current = 4, 6
	since := req.GetSinceRevision()
	if since != 0 && (since < oldestRetained || since > current) {
		return status.Error(codes.OutOfRange, "revision not in the retained log")
	}
	live := func(id string) *delegationv1.Delegation {
		return &delegationv1.Delegation{Id: id, State: delegationv1.State_STATE_ACTIVE}
	}
	msgs := []*delegationv1.WatchDelegationsResponse{
		{Kind: &delegationv1.WatchDelegationsResponse_Snapshot{Snapshot: &delegationv1.SnapshotChunk{
			Delegations: []*delegationv1.Delegation{live("dlg_a"), live("dlg_b")}}}},
		{Kind: &delegationv1.WatchDelegationsResponse_Snapshot{Snapshot: &delegationv1.SnapshotChunk{
			Delegations: []*delegationv1.Delegation{live("dlg_c")}}}},
		{Kind: &delegationv1.WatchDelegationsResponse_SnapshotEnd{SnapshotEnd: &delegationv1.SnapshotEnd{Revision: 5}}},
		{Kind: &delegationv1.WatchDelegationsResponse_Change{Change: &delegationv1.DelegationChange{
			Revision: 6,
			Type:     delegationv1.ChangeType_CHANGE_TYPE_REVOKED,
			Delegation: &delegationv1.Delegation{
				Id: "dlg_b", State: delegationv1.State_STATE_REVOKED, Revision: 6,
			},
		}}},
	}
	for _, m := range msgs {
		if err := stream.Send(m); err != nil {
			return err
		}
	}
	return nil
}

// replica is what a watching client keeps: the delegations by id and the
// last revision applied.
type replica struct {
	byID     map[string]*delegationv1.Delegation
	revision uint64
}

// follow runs one WatchDelegations stream from r.revision until it ends.
// It returns the stream's error; io.EOF when the server closed it cleanly.
func (r *replica) follow(ctx context.Context, client delegationv1.DelegationServiceClient) error {
	stream, err := client.WatchDelegations(ctx, &delegationv1.WatchDelegationsRequest{SinceRevision: r.revision})
	if err != nil {
		return err
	}
	var pending []*delegationv1.Delegation // snapshot parts, applied at snapshot_end
	for {
		resp, err := stream.Recv()
		if err != nil {
			return err
		}
		switch kind := resp.GetKind().(type) {
		case *delegationv1.WatchDelegationsResponse_Snapshot:
			pending = append(pending, kind.Snapshot.GetDelegations()...)
		case *delegationv1.WatchDelegationsResponse_SnapshotEnd:
			r.byID = make(map[string]*delegationv1.Delegation, len(pending))
			for _, d := range pending {
				r.byID[d.GetId()] = d
			}
			r.revision = kind.SnapshotEnd.GetRevision()
			fmt.Printf("snapshot of %d at revision %d\n", len(pending), r.revision)
		case *delegationv1.WatchDelegationsResponse_Change:
			d := kind.Change.GetDelegation()
			r.byID[d.GetId()] = d
			r.revision = kind.Change.GetRevision()
			fmt.Printf("revision %d: %s %s\n", r.revision, d.GetId(), kind.Change.GetType())
		case *delegationv1.WatchDelegationsResponse_Progress:
			r.revision = max(r.revision, kind.Progress.GetRevision())
		}
	}
}

// Example_watch keeps a replica of the delegations as the composer plugin
// does. Its remembered revision (2) has left the server's log, so the server
// answers OUT_OF_RANGE and the client starts over from a snapshot.
func Example_watch() {
	dir, err := os.MkdirTemp("", "agentid-watch")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	lis, err := net.Listen("unix", filepath.Join(dir, "api.sock"))
	if err != nil {
		panic(err)
	}
	srv := grpc.NewServer()
	delegationv1.RegisterDelegationServiceServer(srv, watchServer{})
	go func() { _ = srv.Serve(lis) }()
	defer srv.Stop()

	conn, err := grpc.NewClient("unix://"+lis.Addr().String(),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		panic(err)
	}
	defer conn.Close()
	client := delegationv1.NewDelegationServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	r := &replica{revision: 2}
	for attempt := 0; attempt < 2; attempt++ {
		err := r.follow(ctx, client)
		if status.Code(err) == codes.OutOfRange {
			fmt.Println("out of range: resync from a snapshot")
			r.byID, r.revision = nil, 0
			continue
		}
		if !errors.Is(err, io.EOF) {
			panic(err)
		}
		break
	}
	var active []string
	for id, d := range r.byID {
		if d.GetState() == delegationv1.State_STATE_ACTIVE {
			active = append(active, id)
		}
	}
	slices.Sort(active)
	fmt.Println("active:", active, "revision:", r.revision)
	// Output:
	// out of range: resync from a snapshot
	// snapshot of 3 at revision 5
	// revision 6: dlg_b CHANGE_TYPE_REVOKED
	// active: [dlg_a dlg_c] revision: 6
}
