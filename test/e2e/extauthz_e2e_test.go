//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"

	"github.com/agentid/agentid/pkg/verify"
	"github.com/agentid/agentid/pkg/verify/extauthz"
	delegationv1 "github.com/agentid/agentid/proto/agentid/delegation/v1"
	"github.com/agentid/agentid/test/e2e/stack"
)

// extAuthzRules are agentid-extauthz's route rules in the step: delegated
// reads of the campaigns by the stack's agents for users of Hydra, and a
// status page for the orchestrator's plain identity.
func extAuthzRules(st *stack.Stack) []extauthz.Rule {
	return []extauthz.Rule{{
		Name:  "read-campaigns",
		Match: `request.method == "GET" && request.path.startsWith("/campaigns")`,
		Allow: `delegated && agent.startsWith("spiffe://example.org/agent/") && "campaigns:read" in scopes && user.iss == "` + st.Hydra.IssuerURL() + `"`,
	}, {
		Name:  "orchestrator-status",
		Match: `request.method == "GET" && request.path == "/status"`,
		Allow: `!delegated && agent == "` + stack.Orchestrator.String() + `"`,
	}}
}

// spoofedHeaders are x-agentid-* headers a client sends itself, hoping
// upstream takes them for agentid-extauthz's.
var spoofedHeaders = map[string]string{
	extauthz.HeaderAgent:      stack.Newsletter.String(),
	extauthz.HeaderUser:       "https://idp.example.com#mallory",
	extauthz.HeaderScope:      "campaigns:write",
	extauthz.HeaderDelegation: "dlg_00000000000000000000000000",
	extauthz.HeaderChain:      stack.Newsletter.String(),
}

// checkRequest is the CheckRequest Envoy sends for a request from peer (the
// downstream X509-SVID's URI SAN) carrying token, with the client's
// spoofed identity headers.
func checkRequest(peer spiffeid.ID, method, path, token string) *authv3.CheckRequest {
	headers := map[string]string{
		":authority": "crm.example.org", ":method": method, ":path": path,
		"authorization": "Bearer " + token,
	}
	for k, v := range spoofedHeaders {
		headers[k] = v
	}
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source: &authv3.AttributeContext_Peer{Principal: peer.String()},
		Destination: &authv3.AttributeContext_Peer{
			Principal: stack.ServiceID.String(),
		},
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Id: "e2e", Method: method, Path: path, Host: "crm.example.org", Scheme: "https", Protocol: "HTTP/1.1",
			Headers: headers,
		}},
	}}
}

// wantAllow is agentid-extauthz's answer passing headers upstream: each
// overwrites the client's copy; remove lists the identity headers that
// have no value and are taken off.
func wantAllow(set [][2]string, remove []string) *authv3.CheckResponse {
	ok := &authv3.OkHttpResponse{HeadersToRemove: remove}
	for _, h := range set {
		ok.Headers = append(ok.Headers, &corev3.HeaderValueOption{
			Header:       &corev3.HeaderValue{Key: h[0], Value: h[1]},
			AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
		})
	}
	return &authv3.CheckResponse{
		Status:       &rpcstatus.Status{Code: int32(codes.OK)},
		HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: ok},
	}
}

// wantDeny is agentid-extauthz's refusal with the given HTTP status, OAuth
// error code and description (the verifier's or the rules' error).
func wantDeny(status typev3.StatusCode, grpcCode codes.Code, code, description string) *authv3.CheckResponse {
	headers := []*corev3.HeaderValueOption{
		{Header: &corev3.HeaderValue{Key: "content-type", Value: "application/json"}, AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD},
		{Header: &corev3.HeaderValue{Key: "cache-control", Value: "no-store"}, AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD},
	}
	if status == typev3.StatusCode_Unauthorized {
		headers = append(headers, &corev3.HeaderValueOption{
			Header:       &corev3.HeaderValue{Key: "www-authenticate", Value: `Bearer realm="agentid", error="` + code + `"`},
			AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
		})
	}
	body, _ := json.Marshal(map[string]string{"error": code, "error_description": description})
	return &authv3.CheckResponse{
		Status: &rpcstatus.Status{Code: int32(grpcCode), Message: description},
		HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
			Status: &typev3.HttpStatus{Code: status}, Headers: headers, Body: string(body),
		}},
	}
}

// check sends one CheckRequest, bounded in time, and fails the test on a
// gRPC error: agentid-extauthz answers refusals as denials, never as
// errors.
func check(t *testing.T, client authv3.AuthorizationClient, req *authv3.CheckRequest) *authv3.CheckResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := client.Check(ctx, req)
	if err != nil {
		t.Fatalf("Check %s %s as %s: %v", req.GetAttributes().GetRequest().GetHttp().GetMethod(),
			req.GetAttributes().GetRequest().GetHttp().GetPath(), req.GetAttributes().GetSource().GetPrincipal(), err)
	}
	return resp
}

func wantResponse(t *testing.T, what string, got, want *authv3.CheckResponse) {
	t.Helper()
	if !proto.Equal(got, want) {
		t.Fatalf("%s: agentid-extauthz answered\n%s\nwant\n%s", what, prototext.Format(got), prototext.Format(want))
	}
}

// step9: agentid-extauthz, the ext_authz server an Envoy in front of the
// service would ask, runs on the real stack: attested by its manifest, the
// JWT bundles from the Workload API, the revocation watch on
// agentid-server. Envoy-shaped CheckRequests with market-analysis's
// delegated token are allowed from market-analysis only, with the identity
// headers overwriting the client's; after the root is revoked, the token
// issued before is refused within a second.
func (sc *scenario) step9(t *testing.T) {
	st := sc.st
	begin := time.Now()
	ea := st.StartExtAuthz(t, stack.ExtAuthzOptions{Rules: extAuthzRules(st), AllowPlainTokens: true})
	defer ea.Stop(t)
	t.Logf("timing: agentid-extauthz SERVING (revocation snapshot received) in %s", time.Since(begin).Round(time.Millisecond))
	conn, err := grpc.NewClient(ea.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := authv3.NewAuthorizationClient(conn)

	// alice → orchestrator → market-analysis, campaigns:read.
	orch := st.Manifest(t, "orchestrator")
	out, err := st.CLIAs(t, orch, "-o", "json", "delegate", "-agent", stack.Orchestrator.String(),
		"-scope", "campaigns:read", "-ttl", "10m", "-token-file", sc.alice.TokenFile, "-intent", "ext_authz check")
	if err != nil {
		t.Fatalf("alice's delegation to the orchestrator: %v", err)
	}
	root := stack.ParseDelegation(t, out)
	out, err = st.CLIAs(t, orch, "-o", "json", "sub-delegate", "-parent", root.Id,
		"-agent", stack.Analyst.String(), "-scope", "campaigns:read", "-ttl", "10m")
	if err != nil {
		t.Fatalf("the orchestrator's sub-delegation to market-analysis: %v", err)
	}
	sub := stack.ParseDelegation(t, out)
	if sub.RootId != root.Id || !slices.Equal(sub.Scopes, []string{"campaigns:read"}) ||
		!slices.Equal(sub.Chain, []string{stack.Orchestrator.String(), stack.Analyst.String()}) || sub.State != delegationv1.State_STATE_ACTIVE {
		t.Fatalf("sub-delegation %s", out)
	}
	analyst := st.Manifest(t, "market-analysis")
	sc.waitToken(t, analyst, stack.Analyst.String(), sub.Id)
	r := sc.fetchJWT(t, analyst, stack.Analyst.String(), sub.Id, stack.ServiceID.String())
	wantCode(t, "market-analysis's delegated token for the service", r, "OK", "")
	token := r.Token

	// (a) From market-analysis itself: allowed by read-campaigns, every
	// identity header set from the token, over the client's copies.
	allowed := wantAllow([][2]string{
		{extauthz.HeaderAgent, stack.Analyst.String()},
		{extauthz.HeaderUser, st.Hydra.IssuerURL() + "#alice"},
		{extauthz.HeaderScope, "campaigns:read"},
		{extauthz.HeaderDelegation, sub.Id},
		{extauthz.HeaderChain, stack.Orchestrator.String() + "," + stack.Analyst.String()},
	}, nil)
	wantResponse(t, "market-analysis's token from market-analysis",
		check(t, client, checkRequest(stack.Analyst, "GET", "/campaigns/q3?fields=budget", token)), allowed)

	// The rules still decide: no rule covers a POST.
	wantResponse(t, "market-analysis's token on a route no rule covers",
		check(t, client, checkRequest(stack.Analyst, "POST", "/campaigns/q3", token)),
		wantDeny(typev3.StatusCode_Forbidden, codes.PermissionDenied, "access_denied", extauthz.ErrNoRule.Error()))

	// (b) The same token over another agent's connection: the token is
	// bound to its subject, whoever the thief.
	for _, thief := range []spiffeid.ID{stack.Orchestrator, stack.Newsletter} {
		desc := fmt.Sprintf("%s: sub %s, peer %s", verify.ErrPeerMismatch, stack.Analyst, thief)
		wantResponse(t, "market-analysis's token from "+thief.String(),
			check(t, client, checkRequest(thief, "GET", "/campaigns/q3", token)),
			wantDeny(typev3.StatusCode_Unauthorized, codes.Unauthenticated, "invalid_token", desc))
	}

	// A plain JWT-SVID carries no user: the user, scope, delegation and
	// chain headers a client sent are removed, not passed on.
	r = st.Probe(t, orch, "jwt", "-spiffe-id", stack.Orchestrator.String(), "-audience", stack.ServiceID.String())
	wantCode(t, "the orchestrator's plain token for the service", r, "OK", "")
	wantResponse(t, "the orchestrator's plain token on /status",
		check(t, client, checkRequest(stack.Orchestrator, "GET", "/status", r.Token)),
		wantAllow([][2]string{{extauthz.HeaderAgent, stack.Orchestrator.String()}},
			[]string{extauthz.HeaderUser, extauthz.HeaderScope, extauthz.HeaderDelegation, extauthz.HeaderChain}))

	// (c) The root revoked: Envoy keeps asking with the token issued
	// before, until agentid-extauthz refuses it.
	ctx, cancel := context.WithTimeout(context.Background(), propagationTimeout)
	defer cancel()
	type answer struct {
		resp     *authv3.CheckResponse
		at       time.Time
		accepted int
		err      error
	}
	done := make(chan answer, 1)
	firstAllowed := make(chan struct{})
	go func() {
		a := answer{}
		for {
			resp, err := client.Check(ctx, checkRequest(stack.Analyst, "GET", "/campaigns/q3", token))
			if err != nil {
				a.err = err
				done <- a
				return
			}
			if resp.GetStatus().GetCode() != int32(codes.OK) {
				a.resp, a.at = resp, time.Now()
				done <- a
				return
			}
			if a.accepted++; a.accepted == 1 {
				close(firstAllowed)
			}
			select {
			case <-ctx.Done():
				a.err = ctx.Err()
				done <- a
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	select {
	case <-firstAllowed:
	case a := <-done:
		t.Fatalf("market-analysis's token was refused before the revocation: %v %v", a.err, a.resp)
	}
	revoking := time.Now()
	out, err = st.CLI(t, nil, "revoke", "-reason", "ext_authz check done", root.Id)
	if err != nil {
		t.Fatalf("revoking %s: %v", root.Id, err)
	}
	revokeCall := time.Since(revoking)
	if want := fmt.Sprintf("revoked 2 delegation(s): %s %s\n", root.Id, sub.Id); out != want {
		t.Fatalf("revoke printed %q, want %q", out, want)
	}
	a := <-done
	if a.err != nil {
		t.Fatalf("agentid-extauthz still allowed the revoked delegation's token after %s (%d calls allowed): %v", propagationTimeout, a.accepted, a.err)
	}
	// Both are revoked in one commit; either may be applied first.
	bySub := wantDeny(typev3.StatusCode_Unauthorized, codes.Unauthenticated, "invalid_token",
		fmt.Sprintf("%s: %s", verify.ErrRevoked, sub.Id))
	byRoot := wantDeny(typev3.StatusCode_Unauthorized, codes.Unauthenticated, "invalid_token",
		fmt.Sprintf("%s: root %s of %s", verify.ErrRevoked, root.Id, sub.Id))
	if !proto.Equal(a.resp, bySub) && !proto.Equal(a.resp, byRoot) {
		wantResponse(t, "the revoked delegation's token", a.resp, bySub)
	}
	out, err = st.CLI(t, nil, "-o", "json", "get", sub.Id)
	if err != nil {
		t.Fatalf("agentid get %s: %v", sub.Id, err)
	}
	revoked := stack.ParseDelegation(t, out)
	if revoked.State != delegationv1.State_STATE_REVOKED || !revoked.RevokedAt.IsValid() {
		t.Fatalf("market-analysis's delegation after the revocation: %s", out)
	}
	// As in step 6, the clock starts at agentid-server's commit.
	lag := a.at.Sub(revoked.RevokedAt.AsTime())
	t.Logf("timing: agentid-extauthz refused the pre-revocation token %s after agentid-server committed the revocation (the revoke command took %s, %d checks allowed before); %s",
		lag.Round(time.Millisecond), revokeCall.Round(time.Millisecond), a.accepted, strings.TrimSpace(a.resp.GetDeniedResponse().GetBody()))
	if lag > time.Second {
		t.Fatalf("agentid-extauthz allowed a revoked delegation's token for %s after the commit, want under 1s", lag)
	}
}
