package agentclient

import (
	"errors"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// callError calls an error a refused peer only when the call reached no
// server: an answering server's message cannot make it one.
func TestCallErrorNeedsAnUnreachedServer(t *testing.T) {
	refused := status.Error(codes.Unavailable, "connection error: desc = \"transport: authentication handshake failed: "+
		ErrPeerNotAuthorized.Error()+": spiffe://example.org/impostor\"")
	tests := []struct {
		name    string
		err     error
		peer    peer.Peer
		refused bool
	}{
		{"handshake refused the server", refused, peer.Peer{}, true},
		{"a server answered with that text", refused, peer.Peer{AuthInfo: credentials.TLSInfo{}}, false},
		{"server down", status.Error(codes.Unavailable, "connection refused"), peer.Peer{}, false},
		{"another code with the text", status.Error(codes.Internal, ErrPeerNotAuthorized.Error()), peer.Peer{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := callError("create delegation", tt.err, &tt.peer)
			if errors.Is(err, ErrPeerNotAuthorized) != tt.refused || status.Code(err) != status.Code(tt.err) {
				t.Fatalf("err = %v: refused %v, code %s; want refused %v, code %s",
					err, errors.Is(err, ErrPeerNotAuthorized), status.Code(err), tt.refused, status.Code(tt.err))
			}
		})
	}
}
