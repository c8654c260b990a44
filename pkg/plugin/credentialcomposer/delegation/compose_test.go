package composer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/agentid/agentid/pkg/claims"
	delegationv1 "github.com/agentid/agentid/proto/agentid/delegation/v1"
	credentialcomposerv1 "github.com/spiffe/spire-plugin-sdk/proto/spire/plugin/server/credentialcomposer/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// fixtures returns the delegations every compose case starts with: a root
// held by orchestrator, its child held by analyst, another root of
// analyst's that has expired, and one that expires half a second after t0.
func fixtures() []*delegationv1.Delegation {
	expired := pbDelegation(expiredID, "")
	expired.AgentId, expired.Chain = analyst, []string{analyst}
	expired.CreatedAt, expired.ExpiresAt = timestamppb.New(t0.Add(-2*time.Hour)), timestamppb.New(t0.Add(-time.Hour))
	closing := pbDelegation(closeID, "")
	closing.AgentId, closing.Chain = analyst, []string{analyst}
	closing.ExpiresAt = timestamppb.New(t0.Add(500 * time.Millisecond))
	return []*delegationv1.Delegation{pbDelegation(rootID, ""), pbDelegation(childID, rootID), expired, closing}
}

// happyJSON is the exact claim set of a token under childID: the contract
// with meshes and verifiers, spelled out rather than derived.
const happyJSON = `{"aud":["spiffe://example.org/svc/crm"],` +
	`"delegation":{"chain":["spiffe://example.org/agent/orchestrator","spiffe://example.org/agent/market-analysis"],` +
	`"expires_at":"2026-11-26T22:00:00Z","id":"dlg_01jd0000000000000000000000","root":"dlg_01jc0000000000000000000000","version":"1"},` +
	`"exp":1795694700,"iat":1795694400,` +
	`"principal":{"email":"alice@example.com","iss":"https://idp.example.com","sub":"alice"},` +
	`"scope":"campaigns:read compliance:check","sub":"spiffe://example.org/agent/market-analysis"}`

func TestComposeWorkloadJWTSVID(t *testing.T) {
	cases := []struct {
		name     string
		hcl      string // plugin_data after agentid_socket_path; "-" leaves the plugin unconfigured
		noServer bool
		prepare  func(t *testing.T, h *harness)
		sub      string
		aud      []string
		mutate   func(req *credentialcomposerv1.ComposeWorkloadJWTSVIDRequest)
		wantCode codes.Code
		wantMsg  string
		wantJSON string
		check    func(t *testing.T, h *harness)
	}{
		{
			name: "no marker", sub: analyst, aud: []string{crm},
			wantCode: codes.Unimplemented, wantMsg: "composer: no delegation marker in aud",
		},
		{
			name: "no marker, server unreachable", noServer: true, sub: analyst, aud: []string{crm, "urn:other:x"},
			wantCode: codes.Unimplemented, wantMsg: "composer: no delegation marker in aud",
		},
		{
			name: "happy path", sub: analyst, aud: []string{crm, marker(childID)},
			wantJSON: happyJSON,
			check: func(t *testing.T, h *harness) {
				waitFor(t, "issuance record", h.srv.changed, func() bool { return len(h.srv.recorded()) == 1 })
				r := h.srv.recorded()[0]
				if r.GetDelegationId() != childID || r.GetAgentId() != analyst || len(r.GetAudiences()) != 1 || r.GetAudiences()[0] != crm ||
					!r.GetIssuedAt().AsTime().Equal(t0) || !r.GetExpiresAt().AsTime().Equal(t0.Add(5*time.Minute)) {
					t.Fatalf("issuance record %v", r)
				}
			},
		},
		{
			name: "exp capped at the delegation's expiry, marker first", sub: analyst, aud: []string{marker(childID), crm},
			mutate: func(req *credentialcomposerv1.ComposeWorkloadJWTSVIDRequest) {
				req.Attributes.Claims.Fields["exp"] = structpb.NewNumberValue(t0Unix + 20*3600)
			},
			wantJSON: replace(happyJSON, `"exp":1795694700`, `"exp":1795730400`),
		},
		{
			name: "custom marker prefix", hcl: `marker_prefix = "urn:example:dlg:"`,
			sub: analyst, aud: []string{crm, "urn:example:dlg:" + childID},
			wantJSON: happyJSON,
		},
		{
			name: "custom marker prefix refuses a default marker beside it", hcl: `marker_prefix = "urn:example:dlg:"`,
			sub: analyst, aud: []string{crm, "urn:example:dlg:" + childID, marker(childID)},
			wantCode: codes.InvalidArgument,
			wantMsg: "composer: bad request: audience has the default marker prefix urn:agentid:delegation:, " +
				"but marker_prefix is urn:example:dlg:",
		},
		{
			name: "custom marker prefix refuses a lone default marker", hcl: `marker_prefix = "urn:example:dlg:"`,
			sub: analyst, aud: []string{crm, marker(childID)},
			wantCode: codes.InvalidArgument,
			wantMsg: "composer: bad request: audience has the default marker prefix urn:agentid:delegation:, " +
				"but marker_prefix is urn:example:dlg:",
		},
		{
			name: "unknown delegation", sub: analyst, aud: []string{crm, marker(unknownID)},
			wantCode: codes.PermissionDenied, wantMsg: "composer: unknown delegation: " + unknownID,
		},
		{
			name: "revoked delegation", sub: analyst, aud: []string{crm, marker(childID)},
			prepare: func(t *testing.T, h *harness) {
				h.waitRevision(t, h.srv.revoke(childID))
			},
			wantCode: codes.PermissionDenied, wantMsg: "composer: delegation is revoked: " + childID,
		},
		// agentid-server cascades a revocation by streaming one "revoked"
		// change per descendant; the composer applies each as it comes.
		{
			name: "cascade (root and child revoked): the root is refused", sub: orchestrator, aud: []string{crm, marker(rootID)},
			prepare: func(t *testing.T, h *harness) {
				h.srv.revoke(rootID)
				h.waitRevision(t, h.srv.revoke(childID))
			},
			wantCode: codes.PermissionDenied, wantMsg: "composer: delegation is revoked: " + rootID,
		},
		{
			name: "cascade (root and child revoked): the child is refused", sub: analyst, aud: []string{crm, marker(childID)},
			prepare: func(t *testing.T, h *harness) {
				h.srv.revoke(rootID)
				h.waitRevision(t, h.srv.revoke(childID))
			},
			wantCode: codes.PermissionDenied, wantMsg: "composer: delegation is revoked: " + childID,
		},
		{
			name: "expired delegation", sub: analyst, aud: []string{crm, marker(expiredID)},
			wantCode: codes.PermissionDenied, wantMsg: "composer: delegation is expired: " + expiredID,
		},
		{
			name: "delegation expiring within the second", sub: analyst, aud: []string{crm, marker(closeID)},
			wantCode: codes.PermissionDenied, wantMsg: "composer: delegation is expired: " + closeID,
		},
		{
			name: "foreign delegation", sub: analyst, aud: []string{crm, marker(rootID)},
			wantCode: codes.PermissionDenied, wantMsg: "composer: delegation belongs to another agent: " + rootID,
		},
		{
			name: "foreign and revoked reads foreign", sub: orchestrator, aud: []string{crm, marker(childID)},
			prepare: func(t *testing.T, h *harness) {
				h.waitRevision(t, h.srv.revoke(childID))
			},
			wantCode: codes.PermissionDenied, wantMsg: "composer: delegation belongs to another agent: " + childID,
		},
		{
			name: "two markers", sub: analyst, aud: []string{marker(childID), crm, marker(rootID)},
			wantCode: codes.InvalidArgument, wantMsg: "composer: claims: bad delegation marker: more than one marker audience",
		},
		{
			name: "malformed marker", sub: analyst, aud: []string{crm, marker("dlg_01JD0000000000000000000000")},
			wantCode: codes.InvalidArgument,
			wantMsg:  "composer: claims: bad delegation marker: delegation: invalid delegation id: character 6 is not lower-case base32",
		},
		{
			name: "marker is the only audience", sub: analyst, aud: []string{marker(childID)},
			wantCode: codes.InvalidArgument, wantMsg: "composer: bad request: the delegation marker is the only audience",
		},
		{
			name: "sub differs from the SPIFFE ID", sub: analyst, aud: []string{crm, marker(childID)},
			mutate:   func(req *credentialcomposerv1.ComposeWorkloadJWTSVIDRequest) { req.SpiffeId = orchestrator },
			wantCode: codes.InvalidArgument, wantMsg: "composer: bad request: sub claim does not equal the SPIFFE ID",
		},
		{
			name: "exp missing", sub: analyst, aud: []string{crm, marker(childID)},
			mutate: func(req *credentialcomposerv1.ComposeWorkloadJWTSVIDRequest) {
				delete(req.Attributes.Claims.Fields, "exp")
			},
			wantCode: codes.InvalidArgument, wantMsg: "composer: bad request: exp claim is missing or not a number",
		},
		{
			name: "aud not strings", sub: analyst, aud: []string{crm},
			mutate: func(req *credentialcomposerv1.ComposeWorkloadJWTSVIDRequest) {
				req.Attributes.Claims.Fields["aud"] = structpb.NewNumberValue(1)
			},
			wantCode: codes.InvalidArgument, wantMsg: "composer: bad request: aud claim is not a list of strings",
		},
		{
			name: "missing attributes", sub: analyst, aud: []string{crm},
			mutate:   func(req *credentialcomposerv1.ComposeWorkloadJWTSVIDRequest) { req.Attributes = nil },
			wantCode: codes.InvalidArgument, wantMsg: "composer: request missing attributes",
		},
		{
			name: "stale replica", sub: analyst, aud: []string{crm, marker(childID)},
			prepare:  func(t *testing.T, h *harness) { h.clock.Add(31 * time.Second) },
			wantCode: codes.Unavailable, wantMsg: "composer: delegation replica is stale: last heard from agentid-server 31s ago, bound 30s",
		},
		{
			name: "server unreachable at start", noServer: true, sub: analyst, aud: []string{crm, marker(childID)},
			wantCode: codes.Unavailable, wantMsg: "composer: delegation replica not ready",
		},
		{
			name: "not configured", hcl: "-", sub: analyst, aud: []string{crm, marker(childID)},
			wantCode: codes.FailedPrecondition, wantMsg: "composer: not configured",
		},
		{
			name: "audit queue full", hcl: "audit_queue_size = 1", sub: analyst, aud: []string{crm, marker(childID)},
			prepare: func(t *testing.T, h *harness) {
				gate := make(chan struct{})
				h.srv.mu.Lock()
				h.srv.auditGate = gate
				h.srv.mu.Unlock()
				t.Cleanup(func() { close(gate) })
				// The first record is taken by the sender, which waits at
				// the gate; the second fills the queue.
				if _, err := h.client.ComposeWorkloadJWTSVID(context.Background(), jwtRequest(t, analyst, crm, marker(childID))); err != nil {
					t.Fatal(err)
				}
				waitFor(t, "sender in flight", h.srv.changed, func() bool {
					h.srv.mu.Lock()
					defer h.srv.mu.Unlock()
					return h.srv.auditCalls == 1
				})
				if _, err := h.client.ComposeWorkloadJWTSVID(context.Background(), jwtRequest(t, analyst, crm, marker(childID))); err != nil {
					t.Fatal(err)
				}
			},
			wantCode: codes.ResourceExhausted, wantMsg: "composer: audit queue full, refusing to issue an unaudited token",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var srv *fakeServer
			if !tc.noServer {
				srv = startFakeServer(t, "", fixtures()...)
			}
			h := newHarness(t, srv, tc.hcl)
			if srv != nil && tc.hcl != "-" {
				h.waitReady(t)
			}
			if tc.prepare != nil {
				tc.prepare(t, h)
			}
			req := jwtRequest(t, tc.sub, tc.aud...)
			if tc.mutate != nil {
				tc.mutate(req)
			}
			resp, err := h.client.ComposeWorkloadJWTSVID(context.Background(), req)
			if tc.wantJSON == "" {
				checkStatus(t, err, tc.wantCode, tc.wantMsg)
			} else {
				if err != nil {
					t.Fatal(err)
				}
				got, err := json.Marshal(resp.GetAttributes().GetClaims().AsMap())
				if err != nil {
					t.Fatal(err)
				}
				if string(got) != tc.wantJSON {
					t.Fatalf("claims\n got %s\nwant %s", got, tc.wantJSON)
				}
			}
			if tc.check != nil {
				tc.check(t, h)
			}
		})
	}
}

func replace(s, old, new string) string {
	out, n := "", 0
	for i := 0; i+len(old) <= len(s); i++ {
		if s[i:i+len(old)] == old {
			out, n = s[:i]+new+s[i+len(old):], n+1
			break
		}
	}
	if n != 1 {
		panic("replace: " + old + " not found")
	}
	return out
}

// TestCodeOf checks the mapping of the composer's errors to gRPC codes:
// a failure that is none of the classified ones is the plugin's own
// (Internal), never blamed on the caller.
func TestCodeOf(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want codes.Code
	}{
		{errNoMarker, codes.Unimplemented},
		{fmt.Errorf("%w: x", errBadRequest), codes.InvalidArgument},
		{fmt.Errorf("composer: %w", claims.ErrMarker), codes.InvalidArgument},
		{ErrNotReady, codes.Unavailable},
		{fmt.Errorf("%w: x", ErrStale), codes.Unavailable},
		{errAuditStopped, codes.Unavailable},
		{ErrUnknownDelegation, codes.PermissionDenied},
		{ErrForeignDelegation, codes.PermissionDenied},
		{ErrRevoked, codes.PermissionDenied},
		{ErrExpired, codes.PermissionDenied},
		{ErrAuditQueueFull, codes.ResourceExhausted},
		{errors.New("composer: failed to encode claims"), codes.Internal},
	} {
		if got := codeOf(tc.err); got != tc.want {
			t.Errorf("codeOf(%v) = %s, want %s", tc.err, got, tc.want)
		}
	}
}

// TestX509Unimplemented checks that every X509 RPC answers Unimplemented at
// once, configured or not, and whatever agentid-server's state.
func TestX509Unimplemented(t *testing.T) {
	h := newHarness(t, nil, "-")
	ctx := context.Background()
	for _, configured := range []bool{false, true} {
		if configured {
			h.configure(t, "")
		}
		_, err := h.client.ComposeServerX509CA(ctx, &credentialcomposerv1.ComposeServerX509CARequest{})
		checkStatus(t, err, codes.Unimplemented, "not implemented")
		_, err = h.client.ComposeServerX509SVID(ctx, &credentialcomposerv1.ComposeServerX509SVIDRequest{})
		checkStatus(t, err, codes.Unimplemented, "not implemented")
		_, err = h.client.ComposeAgentX509SVID(ctx, &credentialcomposerv1.ComposeAgentX509SVIDRequest{SpiffeId: "spiffe://example.org/spire/agent/x"})
		checkStatus(t, err, codes.Unimplemented, "not implemented")
		_, err = h.client.ComposeWorkloadX509SVID(ctx, &credentialcomposerv1.ComposeWorkloadX509SVIDRequest{SpiffeId: analyst})
		checkStatus(t, err, codes.Unimplemented, "not implemented")
	}
}

// TestServerUnreachableAtStart checks that the plugin configures without
// agentid-server, fails delegated tokens closed, and serves them once the
// server comes up, without being reconfigured.
func TestServerUnreachableAtStart(t *testing.T) {
	h := newHarness(t, nil, "")
	_, err := h.client.ComposeWorkloadJWTSVID(context.Background(), jwtRequest(t, analyst, crm, marker(childID)))
	checkStatus(t, err, codes.Unavailable, "composer: delegation replica not ready")
	if err := h.nextEnd(t); status.Code(err) != codes.Unavailable {
		t.Fatalf("first watch ended with %v, want Unavailable", err)
	}

	h.srv = startFakeServer(t, h.socket, fixtures()...)
	h.waitReady(t)
	resp, err := h.client.ComposeWorkloadJWTSVID(context.Background(), jwtRequest(t, analyst, crm, marker(childID)))
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := json.Marshal(resp.GetAttributes().GetClaims().AsMap()); string(got) != happyJSON {
		t.Fatalf("claims %s", got)
	}
	waitFor(t, "issuance record", h.srv.changed, func() bool { return len(h.srv.recorded()) == 1 })
	containsLog(t, h.logs, "Delegation watch stream ended; reconnecting", "attempt=1")
	containsLog(t, h.logs, "Delegation replica ready", "delegations=4", "revision=4")
}
