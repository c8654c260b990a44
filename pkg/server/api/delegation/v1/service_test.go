package delegation_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/agentid/agentid/pkg/apiconv"
	"github.com/agentid/agentid/pkg/audit"
	"github.com/agentid/agentid/pkg/oidcauth/oidctest"
	"github.com/agentid/agentid/pkg/server/servertest"
	auditv1 "github.com/agentid/agentid/proto/agentid/audit/v1"
	delegationv1 "github.com/agentid/agentid/proto/agentid/delegation/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

func TestDelegateSubDelegateRevoke(t *testing.T) {
	e := newEnv(t)
	front, orch := e.As(t, frontend), e.As(t, orchestrator)

	root := create(t, front, e.AliceToken(t), orchestrator.String(), 2*time.Hour, "campaigns:read", "compliance:check", "payroll:write")
	// payroll:write is neither in the rule nor the ceiling: the grant narrows;
	// 2h is capped at the rule's 1h.
	if got := strings.Join(root.Scopes, " "); got != "campaigns:read compliance:check" {
		t.Fatalf("granted scopes %q", got)
	}
	if !root.ExpiresAt.AsTime().Equal(e.Clock.Now().Add(time.Hour).Truncate(time.Nanosecond)) || root.MaxDepth != 2 || root.Depth != 1 ||
		root.CreatedBy != frontend.String() || root.Principal.Subject != "alice" || root.Principal.Email != "alice@example.com" ||
		root.State != delegationv1.State_STATE_ACTIVE || root.RootId != root.Id || root.Revision != 1 {
		t.Fatalf("root delegation: %v", root)
	}

	child := sub(t, orch, root.Id, analyst.String(), 3*time.Hour, "campaigns:read")
	if child.ParentId != root.Id || child.RootId != root.Id || strings.Join(child.Chain, " ") != orchestrator.String()+" "+analyst.String() ||
		!child.ExpiresAt.AsTime().Equal(root.ExpiresAt.AsTime()) || child.CreatedBy != orchestrator.String() || child.Revision != 2 {
		t.Fatalf("child delegation: %v", child)
	}

	// The user revokes the root with a fresh token from the user page: the
	// cascade takes the child.
	resp, err := e.As(t, servertest.UserPage).Delegations.RevokeDelegation(ctxT(t), &delegationv1.RevokeDelegationRequest{
		Id: root.Id, Reason: "done", UserToken: e.AliceToken(t)})
	if err != nil {
		t.Fatal(err)
	}
	if resp.RevokedCount != 2 || strings.Join(resp.RevokedIds, " ") != root.Id+" "+child.Id || resp.Delegation.State != delegationv1.State_STATE_REVOKED {
		t.Fatalf("revoke: %v", resp)
	}
	// Revoking again changes nothing and is not an error.
	again, err := e.Local(t).Delegations.RevokeDelegation(ctxT(t), &delegationv1.RevokeDelegationRequest{Id: child.Id})
	if err != nil || again.RevokedCount != 0 {
		t.Fatalf("second revoke: %v %v", again, err)
	}
	got, err := orch.Delegations.GetDelegation(ctxT(t), &delegationv1.GetDelegationRequest{Id: child.Id})
	if err != nil || got.Delegation.State != delegationv1.State_STATE_REVOKED || got.Delegation.RevokeReason == "" {
		t.Fatalf("child after revoke: %v %v", got, err)
	}

	// The audit log holds the story, in order, and its chain verifies.
	events := exportEvents(t, e)
	var types []string
	for _, ev := range events {
		types = append(types, ev.Type.String())
	}
	if got := strings.Join(types, " "); got != "delegation_created sub_delegated revoked revoked" {
		t.Fatalf("audit types %q", got)
	}
	// One revoked event per delegation of the cascade, both by the user.
	if events[2].Actor != "user:"+e.IDP.URL()+"#alice" || events[3].Actor != events[2].Actor || events[3].DelegationID != child.Id {
		t.Fatalf("revoke actor %q", events[2].Actor)
	}
	if err := audit.VerifySlice(events); err != nil {
		t.Fatal(err)
	}
}

func exportEvents(tb testing.TB, e *servertest.Env) []audit.Event {
	tb.Helper()
	stream, err := e.Local(tb).Audit.ExportEvents(ctxT(tb), &auditv1.ExportEventsRequest{})
	if err != nil {
		tb.Fatal(err)
	}
	var out []audit.Event
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			tb.Fatal(err)
		}
		for _, pe := range msg.Events {
			ev, err := apiconv.EventFromProto(pe)
			if err != nil {
				tb.Fatal(err)
			}
			out = append(out, ev)
		}
	}
}

// TestBadInput sends malformed, unauthorised and forged requests through the
// real gRPC server. Each gets an exact code and message; nothing is stored;
// a denied audit event is written wherever a caller was identified and the
// request got past the syntax checks.
func TestBadInput(t *testing.T) {
	e := newEnv(t)
	front, orch, anal, strange, loc, verif := e.As(t, frontend), e.As(t, orchestrator), e.As(t, analyst), e.As(t, stranger), e.Local(t), e.As(t, verifierID)
	tok := e.AliceToken(t)

	narrow := create(t, front, tok, orchestrator.String(), time.Hour, "campaigns:read")
	wide := create(t, front, tok, orchestrator.String(), time.Hour, "campaigns:read", "compliance:check")
	deep := sub(t, orch, wide.Id, analyst.String(), time.Hour, "campaigns:read")
	revoked := create(t, front, tok, orchestrator.String(), time.Hour, "campaigns:read")
	if _, err := loc.Delegations.RevokeDelegation(ctxT(t), &delegationv1.RevokeDelegationRequest{Id: revoked.Id}); err != nil {
		t.Fatal(err)
	}
	expiring := create(t, front, tok, orchestrator.String(), time.Minute, "campaigns:read")
	e.Clock.Add(2 * time.Minute)
	tok = e.AliceToken(t) // fresh at the new time
	bob := e.IDP.Token(t, oidctest.Claims{Subject: "bob", Audience: audience, Groups: []string{"marketing"}, IssuedAt: e.Clock.Now()})
	claims := func(mut func(*oidctest.Claims)) oidctest.Claims {
		c := oidctest.Claims{Subject: "alice", Audience: audience, Groups: []string{"marketing"}, IssuedAt: e.Clock.Now(), Expiry: e.Clock.Now().Add(time.Hour)}
		if mut != nil {
			mut(&c)
		}
		return c
	}
	const unknownID = "dlg_00000000000000000000000000"
	ttl := durationpb.New(time.Hour)
	createReq := func(mut func(*delegationv1.CreateDelegationRequest)) *delegationv1.CreateDelegationRequest {
		r := &delegationv1.CreateDelegationRequest{UserToken: tok, AgentId: orchestrator.String(), Scopes: []string{"campaigns:read"}, Ttl: ttl}
		if mut != nil {
			mut(r)
		}
		return r
	}
	subReq := func(mut func(*delegationv1.CreateSubDelegationRequest)) *delegationv1.CreateSubDelegationRequest {
		r := &delegationv1.CreateSubDelegationRequest{ParentId: wide.Id, AgentId: analyst.String(), Scopes: []string{"campaigns:read"}, Ttl: ttl}
		if mut != nil {
			mut(r)
		}
		return r
	}
	many := make([]string, 65)
	for i := range many {
		many[i] = "s" + strings.Repeat("x", i)
	}
	const badToken = "oidcauth: invalid user token"

	tests := []struct {
		name   string
		call   func(ctx context.Context) error
		code   codes.Code
		msg    string
		denied bool
	}{
		{"malformed agent id", func(ctx context.Context) error {
			_, err := front.Delegations.CreateDelegation(ctx, createReq(func(r *delegationv1.CreateDelegationRequest) { r.AgentId = "agent/orchestrator" }))
			return err
		}, codes.InvalidArgument, "agent_id: scheme is missing or invalid", false},
		{"empty agent id", func(ctx context.Context) error {
			_, err := front.Delegations.CreateDelegation(ctx, createReq(func(r *delegationv1.CreateDelegationRequest) { r.AgentId = "" }))
			return err
		}, codes.InvalidArgument, "agent_id: is required", false},
		{"undeclared agent", func(ctx context.Context) error {
			_, err := front.Delegations.CreateDelegation(ctx, createReq(func(r *delegationv1.CreateDelegationRequest) { r.AgentId = "spiffe://example.org/agent/ghost" }))
			return err
		}, codes.NotFound, "agent_id: not a declared agent", true},
		{"no scopes", func(ctx context.Context) error {
			_, err := front.Delegations.CreateDelegation(ctx, createReq(func(r *delegationv1.CreateDelegationRequest) { r.Scopes = nil }))
			return err
		}, codes.InvalidArgument, "scopes: at least one scope is required", false},
		{"scope with space", func(ctx context.Context) error {
			_, err := front.Delegations.CreateDelegation(ctx, createReq(func(r *delegationv1.CreateDelegationRequest) { r.Scopes = []string{"campaigns read"} }))
			return err
		}, codes.InvalidArgument, "scopes: delegation: invalid scope: scope 0: whitespace at byte 9", false},
		{"too many scopes", func(ctx context.Context) error {
			_, err := front.Delegations.CreateDelegation(ctx, createReq(func(r *delegationv1.CreateDelegationRequest) { r.Scopes = many }))
			return err
		}, codes.InvalidArgument, "scopes: delegation: invalid scope: 65 scopes, at most 64", false},
		{"oversize intent", func(ctx context.Context) error {
			_, err := front.Delegations.CreateDelegation(ctx, createReq(func(r *delegationv1.CreateDelegationRequest) { r.Intent = strings.Repeat("a", 2049) }))
			return err
		}, codes.InvalidArgument, "intent: delegation: invalid intent: 2049 bytes, at most 2048", false},
		{"no ttl", func(ctx context.Context) error {
			_, err := front.Delegations.CreateDelegation(ctx, createReq(func(r *delegationv1.CreateDelegationRequest) { r.Ttl = nil }))
			return err
		}, codes.InvalidArgument, "ttl: is required", false},
		{"negative ttl", func(ctx context.Context) error {
			_, err := front.Delegations.CreateDelegation(ctx, createReq(func(r *delegationv1.CreateDelegationRequest) { r.Ttl = durationpb.New(-time.Second) }))
			return err
		}, codes.InvalidArgument, "ttl: must be positive and at most 720h0m0s", false},
		{"no user token", func(ctx context.Context) error {
			_, err := front.Delegations.CreateDelegation(ctx, createReq(func(r *delegationv1.CreateDelegationRequest) { r.UserToken = "" }))
			return err
		}, codes.Unauthenticated, badToken, true},
		{"alg none", func(ctx context.Context) error {
			_, err := front.Delegations.CreateDelegation(ctx, createReq(func(r *delegationv1.CreateDelegationRequest) { r.UserToken = e.IDP.NoneToken(claims(nil)) }))
			return err
		}, codes.Unauthenticated, badToken, true},
		{"HS256 keyed with the public key", func(ctx context.Context) error {
			_, err := front.Delegations.CreateDelegation(ctx, createReq(func(r *delegationv1.CreateDelegationRequest) { r.UserToken = e.IDP.HS256WithPublicKey(t, claims(nil)) }))
			return err
		}, codes.Unauthenticated, badToken, true},
		{"unknown kid", func(ctx context.Context) error {
			_, err := front.Delegations.CreateDelegation(ctx, createReq(func(r *delegationv1.CreateDelegationRequest) { r.UserToken = e.IDP.TokenWithUnknownKey(t, claims(nil)) }))
			return err
		}, codes.Unauthenticated, badToken, true},
		{"expired token", func(ctx context.Context) error {
			_, err := front.Delegations.CreateDelegation(ctx, createReq(func(r *delegationv1.CreateDelegationRequest) {
				r.UserToken = e.IDP.Token(t, claims(func(c *oidctest.Claims) {
					c.IssuedAt, c.Expiry = e.Clock.Now().Add(-2*time.Hour), e.Clock.Now().Add(-time.Hour)
				}))
			}))
			return err
		}, codes.Unauthenticated, badToken, true},
		{"token for another audience", func(ctx context.Context) error {
			_, err := front.Delegations.CreateDelegation(ctx, createReq(func(r *delegationv1.CreateDelegationRequest) {
				r.UserToken = e.IDP.Token(t, claims(func(c *oidctest.Claims) { c.Audience = "another-app" }))
			}))
			return err
		}, codes.Unauthenticated, badToken, true},
		{"unlisted issuer", func(ctx context.Context) error {
			_, err := front.Delegations.CreateDelegation(ctx, createReq(func(r *delegationv1.CreateDelegationRequest) {
				r.UserToken = e.IDP.Token(t, claims(func(c *oidctest.Claims) { c.Issuer = "https://evil.example.com" }))
			}))
			return err
		}, codes.Unauthenticated, badToken, true},
		{"garbage token", func(ctx context.Context) error {
			_, err := front.Delegations.CreateDelegation(ctx, createReq(func(r *delegationv1.CreateDelegationRequest) { r.UserToken = "not.a.jwt" }))
			return err
		}, codes.Unauthenticated, badToken, true},
		{"user outside the rule", func(ctx context.Context) error {
			_, err := front.Delegations.CreateDelegation(ctx, createReq(func(r *delegationv1.CreateDelegationRequest) {
				r.UserToken = e.IDP.Token(t, claims(func(c *oidctest.Claims) { c.Groups = []string{"finance"} }))
			}))
			return err
		}, codes.PermissionDenied, "policy: denied: no rule matches", true},
		{"caller not named by the rule", func(ctx context.Context) error {
			_, err := strange.Delegations.CreateDelegation(ctx, createReq(nil))
			return err
		}, codes.PermissionDenied, `policy: denied: rule "marketing": caller not allowed`, true},
		{"nothing grantable", func(ctx context.Context) error {
			_, err := front.Delegations.CreateDelegation(ctx, createReq(func(r *delegationv1.CreateDelegationRequest) { r.Scopes = []string{"payroll:write"} }))
			return err
		}, codes.PermissionDenied, `policy: denied: rule "marketing": no requested scope can be granted`, true},
		{"malformed parent id", func(ctx context.Context) error {
			_, err := orch.Delegations.CreateSubDelegation(ctx, subReq(func(r *delegationv1.CreateSubDelegationRequest) { r.ParentId = "dlg_xyz" }))
			return err
		}, codes.InvalidArgument, "parent_id: delegation: invalid delegation id: length 7, want 30", false},
		{"unknown parent", func(ctx context.Context) error {
			_, err := orch.Delegations.CreateSubDelegation(ctx, subReq(func(r *delegationv1.CreateSubDelegationRequest) { r.ParentId = unknownID }))
			return err
		}, codes.NotFound, "parent_id: no such delegation", true},
		{"sub-delegation by an outsider", func(ctx context.Context) error {
			_, err := strange.Delegations.CreateSubDelegation(ctx, subReq(nil))
			return err
		}, codes.NotFound, "parent_id: no such delegation", true},
		{"sub-delegation by the creating front end", func(ctx context.Context) error {
			_, err := front.Delegations.CreateSubDelegation(ctx, subReq(nil))
			return err
		}, codes.PermissionDenied, "only the parent delegation's agent may sub-delegate it", true},
		{"sub-delegation by a local admin", func(ctx context.Context) error {
			_, err := loc.Delegations.CreateSubDelegation(ctx, subReq(nil))
			return err
		}, codes.PermissionDenied, "only the parent delegation's agent may sub-delegate it", true},
		{"sub-agent not allowed", func(ctx context.Context) error {
			_, err := orch.Delegations.CreateSubDelegation(ctx, subReq(func(r *delegationv1.CreateSubDelegationRequest) { r.AgentId = writer.String() }))
			return err
		}, codes.PermissionDenied, "agent_id: spiffe://example.org/agent/writer is not an allowed sub-agent of spiffe://example.org/agent/orchestrator", true},
		{"scope widening", func(ctx context.Context) error {
			_, err := orch.Delegations.CreateSubDelegation(ctx, subReq(func(r *delegationv1.CreateSubDelegationRequest) {
				r.ParentId, r.Scopes = narrow.Id, []string{"campaigns:read", "compliance:check"}
			}))
			return err
		}, codes.PermissionDenied, "delegation: scopes exceed parent's: compliance:check not held by parent " + narrow.Id, true},
		{"beyond the sub-agent's ceiling", func(ctx context.Context) error {
			_, err := orch.Delegations.CreateSubDelegation(ctx, subReq(func(r *delegationv1.CreateSubDelegationRequest) { r.Scopes = []string{"crm:write"} }))
			return err
		}, codes.PermissionDenied, "scopes: crm:write exceed the ceiling of spiffe://example.org/agent/market-analysis", true},
		{"depth overflow", func(ctx context.Context) error {
			_, err := anal.Delegations.CreateSubDelegation(ctx, subReq(func(r *delegationv1.CreateSubDelegationRequest) { r.ParentId, r.AgentId = deep.Id, writer.String() }))
			return err
		}, codes.FailedPrecondition, "delegation: maximum depth exceeded: depth 3, at most 2", true},
		{"revoked parent", func(ctx context.Context) error {
			_, err := orch.Delegations.CreateSubDelegation(ctx, subReq(func(r *delegationv1.CreateSubDelegationRequest) { r.ParentId = revoked.Id }))
			return err
		}, codes.FailedPrecondition, "delegation: parent is not active: parent " + revoked.Id + " is revoked", true},
		{"expired parent", func(ctx context.Context) error {
			_, err := orch.Delegations.CreateSubDelegation(ctx, subReq(func(r *delegationv1.CreateSubDelegationRequest) { r.ParentId = expiring.Id }))
			return err
		}, codes.FailedPrecondition, "delegation: parent is not active: parent " + expiring.Id + " is expired", true},
		{"get by an outsider", func(ctx context.Context) error {
			_, err := strange.Delegations.GetDelegation(ctx, &delegationv1.GetDelegationRequest{Id: wide.Id})
			return err
		}, codes.NotFound, "id: no such delegation", false},
		{"get unknown", func(ctx context.Context) error {
			_, err := loc.Delegations.GetDelegation(ctx, &delegationv1.GetDelegationRequest{Id: unknownID})
			return err
		}, codes.NotFound, "id: no such delegation", false},
		{"revoke by an outsider", func(ctx context.Context) error {
			_, err := strange.Delegations.RevokeDelegation(ctx, &delegationv1.RevokeDelegationRequest{Id: wide.Id})
			return err
		}, codes.NotFound, "id: no such delegation", true},
		{"revoke of a parent by its sub-agent", func(ctx context.Context) error {
			_, err := anal.Delegations.RevokeDelegation(ctx, &delegationv1.RevokeDelegationRequest{Id: wide.Id})
			return err
		}, codes.NotFound, "id: no such delegation", true},
		{"revoke with another user's token", func(ctx context.Context) error {
			_, err := strange.Delegations.RevokeDelegation(ctx, &delegationv1.RevokeDelegationRequest{Id: wide.Id, UserToken: bob})
			return err
		}, codes.NotFound, "id: no such delegation", true},
		{"revoke with a stale user token", func(ctx context.Context) error {
			_, err := strange.Delegations.RevokeDelegation(ctx, &delegationv1.RevokeDelegationRequest{Id: wide.Id,
				UserToken: e.IDP.Token(t, claims(func(c *oidctest.Claims) { c.IssuedAt = e.Clock.Now().Add(-10 * time.Minute) }))})
			return err
		}, codes.Unauthenticated, badToken, true},
		{"revoke reason too long", func(ctx context.Context) error {
			_, err := loc.Delegations.RevokeDelegation(ctx, &delegationv1.RevokeDelegationRequest{Id: wide.Id, Reason: strings.Repeat("r", 1025)})
			return err
		}, codes.InvalidArgument, "reason: must be valid UTF-8 of at most 1024 bytes", false},
		{"watch by an outsider", func(ctx context.Context) error {
			s, err := strange.Delegations.WatchDelegations(ctx, &delegationv1.WatchDelegationsRequest{RevokedOnly: true})
			if err == nil {
				_, err = s.Recv()
			}
			return err
		}, codes.PermissionDenied, "caller may not watch delegations", true},
		{"verifier watching grants", func(ctx context.Context) error {
			s, err := verif.Delegations.WatchDelegations(ctx, &delegationv1.WatchDelegationsRequest{})
			if err == nil {
				_, err = s.Recv()
			}
			return err
		}, codes.PermissionDenied, "verifiers may only watch with revoked_only", true},
		{"issuance records over mTLS", func(ctx context.Context) error {
			_, err := verif.Audit.RecordTokenIssuance(ctx, &auditv1.RecordTokenIssuanceRequest{Issuances: []*auditv1.TokenIssuance{{
				DelegationId: wide.Id, AgentId: orchestrator.String(), IssuedAt: timestamppb.Now(), ExpiresAt: timestamppb.Now()}}})
			return err
		}, codes.PermissionDenied, "only the local socket may record token issuance", true},
		{"empty issuance batch", func(ctx context.Context) error {
			_, err := loc.Audit.RecordTokenIssuance(ctx, &auditv1.RecordTokenIssuanceRequest{})
			return err
		}, codes.InvalidArgument, "issuances: 1..1000 records per call", false},
		{"audit read by an outsider", func(ctx context.Context) error {
			_, err := strange.Audit.ListEvents(ctx, &auditv1.ListEventsRequest{})
			return err
		}, codes.PermissionDenied, "caller may not read the audit log", false},
		{"list with half a principal", func(ctx context.Context) error {
			_, err := loc.Delegations.ListDelegations(ctx, &delegationv1.ListDelegationsRequest{PrincipalIssuer: e.IDP.URL()})
			return err
		}, codes.InvalidArgument, "principal_issuer, principal_subject: set both or neither", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := ctxT(t)
			revBefore, err := e.Store.Revision(ctx)
			if err != nil {
				t.Fatal(err)
			}
			deniedBefore := servertest.CountDenied(t, e)
			err = tt.call(ctx)
			if st := status.Convert(err); st.Code() != tt.code || st.Message() != tt.msg {
				t.Fatalf("got %s %q\nwant %s %q", st.Code(), st.Message(), tt.code, tt.msg)
			}
			if revAfter, _ := e.Store.Revision(ctx); revAfter != revBefore {
				t.Fatalf("store revision moved from %d to %d: something was written", revBefore, revAfter)
			}
			want := deniedBefore
			if tt.denied {
				want++
			}
			if got := servertest.CountDenied(t, e); got != want {
				t.Fatalf("denied audit events: %d, want %d", got, want)
			}
		})
	}
	if len(tests) < 30 {
		t.Fatalf("the bad-input table must hold at least 30 cases, has %d", len(tests))
	}
}

// TestLogsNeverHoldUserTokens runs refused and accepted requests and checks
// the server's log output and audit log for any part of the tokens.
func TestLogsNeverHoldUserTokens(t *testing.T) {
	var buf bytes.Buffer
	e := newEnvWithLog(t, &buf)
	front := e.As(t, frontend)
	good := e.AliceToken(t)
	forged := e.IDP.HS256WithPublicKey(t, oidctest.Claims{Subject: "alice", Audience: audience})
	create(t, front, good, orchestrator.String(), time.Hour, "campaigns:read")
	d := create(t, front, good, orchestrator.String(), time.Hour, "campaigns:read")
	for _, tok := range []string{forged, good + "x", "sentinel-token-text"} {
		if _, err := front.Delegations.CreateDelegation(ctxT(t), &delegationv1.CreateDelegationRequest{
			UserToken: tok, AgentId: orchestrator.String(), Scopes: []string{"campaigns:read"}, Ttl: durationpb.New(time.Hour)}); status.Code(err) != codes.Unauthenticated {
			t.Fatalf("CreateDelegation with a bad user token: %v, want UNAUTHENTICATED", err)
		}
		if _, err := e.As(t, stranger).Delegations.RevokeDelegation(ctxT(t), &delegationv1.RevokeDelegationRequest{Id: d.Id, UserToken: tok}); status.Code(err) != codes.Unauthenticated {
			t.Fatalf("RevokeDelegation with a bad user token: %v, want UNAUTHENTICATED", err)
		}
	}
	// And the user's own successful revocation.
	if _, err := e.As(t, servertest.UserPage).Delegations.RevokeDelegation(ctxT(t), &delegationv1.RevokeDelegationRequest{Id: d.Id, UserToken: good}); err != nil {
		t.Fatal(err)
	}
	var all strings.Builder
	all.Write(buf.Bytes())
	for _, ev := range exportEvents(t, e) {
		for _, v := range ev.Detail {
			all.WriteString(v)
		}
	}
	if buf.Len() == 0 {
		t.Fatal("expected log output")
	}
	for _, tok := range []string{good, forged, "sentinel-token-text"} {
		for _, part := range strings.Split(tok, ".") {
			if len(part) >= 8 && strings.Contains(all.String(), part) {
				t.Fatalf("a token part %q reached the log or audit log", part[:8])
			}
		}
	}
}
