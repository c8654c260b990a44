//go:build e2e

package e2e

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
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
// headers overwriting the client's; over the mTLS listener, only the Envoy
// it names gets answers; after the root is revoked, the token issued before
// is refused within a second.
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

	// (c) The production path, the mTLS listener: the same answers to
	// the Envoy it admits, nothing to any other client.
	sc.extAuthzOverMTLS(t, token, allowed)

	// (d) The root revoked: Envoy keeps asking with the token issued
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

// The Envoy in front of the service, the one client the mTLS ext_authz
// listener admits, and another workload of the trust domain (a billing
// service's Envoy) that it does not. The test process holds both
// identities: spire-server mints their X509-SVIDs over its admin socket.
var (
	crmEnvoy     = spiffeid.RequireFromString("spiffe://example.org/svc/crm-envoy")
	billingEnvoy = spiffeid.RequireFromString("spiffe://example.org/svc/billing-envoy")
)

// dialTLS is a gRPC connection to addr with conf's TLS, as Envoy's
// ext_authz cluster would make it.
func dialTLS(t *testing.T, addr string, conf *tls.Config) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(conf)))
	if err != nil {
		t.Fatal(err)
	}
	return conn
}

// checkOnce sends req on a new connection with conf's TLS and closes it.
func checkOnce(t *testing.T, addr string, conf *tls.Config, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	t.Helper()
	conn := dialTLS(t, addr, conf)
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return authv3.NewAuthorizationClient(conn).Check(ctx, req)
}

// tlsAlert connects to addr with conf's TLS, offering h2 as gRPC does, and
// returns the error of the handshake or, when the client's side of it
// completes, of the first read: where a refusing server's alert arrives.
func tlsAlert(t *testing.T, addr string, conf *tls.Config) string {
	t.Helper()
	conf = conf.Clone()
	conf.NextProtos = []string{"h2"}
	d := &net.Dialer{Timeout: 5 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", addr, conf)
	if err != nil {
		return err.Error()
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err != nil {
		return err.Error()
	}
	return "the server sent data"
}

// extAuthzOverMTLS runs a second agentid-extauthz with its ext_authz
// listener over mTLS (tls.client_ids: the Envoy only), the way the chart
// deploys it, and calls it with X509-SVIDs the stack's SPIRE issued: the
// Envoy's CheckRequests get exactly the answers of the plaintext listener;
// another SVID of the trust domain, or no certificate, is refused in the
// handshake, so that no Check runs at all; and agentid-extauthz proves to
// be ExtAuthzID, which a client expecting another ID refuses.
func (sc *scenario) extAuthzOverMTLS(t *testing.T, token string, allowed *authv3.CheckResponse) {
	st := sc.st
	begin := time.Now()
	ea := st.StartExtAuthz(t, stack.ExtAuthzOptions{
		Rules: extAuthzRules(st), AllowPlainTokens: true, TLSClientIDs: []spiffeid.ID{crmEnvoy},
	})
	defer ea.Stop(t)
	t.Logf("timing: agentid-extauthz over mTLS ready (/readyz) in %s", time.Since(begin).Round(time.Millisecond))
	bundle := st.SPIRE.X509Bundle(t)
	envoy := st.SPIRE.MintX509SVID(t, crmEnvoy, 10*time.Minute)
	billing := st.SPIRE.MintX509SVID(t, billingEnvoy, 10*time.Minute)
	serverIsExtAuthz := tlsconfig.AuthorizeID(stack.ExtAuthzID)

	conn := dialTLS(t, ea.Addr, tlsconfig.MTLSClientConfig(envoy, bundle, serverIsExtAuthz))
	defer conn.Close()
	client := authv3.NewAuthorizationClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var p peer.Peer
	resp, err := client.Check(ctx, checkRequest(stack.Analyst, "GET", "/campaigns/q3?fields=budget", token), grpc.Peer(&p))
	if err != nil {
		t.Fatalf("Check over mTLS as %s: %v", crmEnvoy, err)
	}
	wantResponse(t, "market-analysis's token from market-analysis, over mTLS", resp, allowed)
	// The authorizer passed, and the certificate it passed is
	// agentid-extauthz's X509-SVID from the Workload API.
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(info.State.PeerCertificates) == 0 {
		t.Fatalf("Check over mTLS: the connection has no server certificate (auth info %T)", p.AuthInfo)
	}
	if id, err := x509svid.IDFromCert(info.State.PeerCertificates[0]); err != nil || id != stack.ExtAuthzID {
		t.Fatalf("Check over mTLS: the server presented %q (%v), want %s", id, err, stack.ExtAuthzID)
	}
	desc := fmt.Sprintf("%s: sub %s, peer %s", verify.ErrPeerMismatch, stack.Analyst, stack.Newsletter)
	wantResponse(t, "market-analysis's token from "+stack.Newsletter.String()+", over mTLS",
		check(t, client, checkRequest(stack.Newsletter, "GET", "/campaigns/q3", token)),
		wantDeny(typev3.StatusCode_Unauthorized, codes.Unauthenticated, "invalid_token", desc))
	const answered = 2

	// Any other client is refused by the server in the TLS handshake. In
	// TLS 1.3 the client's side of the handshake is over before the server
	// has read the client's certificate, so the server's verdict is an
	// alert the client reads afterwards. gRPC writes its HTTP/2 preface
	// right away, and when that lands on a connection the server has
	// already closed, the client's write fails (broken pipe, reset) before
	// it reads the alert: 6 to 27% of 1000 such calls to a gRPC server
	// with verify.ServerTLSConfig did, on this 2-core machine. So the gRPC
	// call is held to Unavailable with no answer, and the alert itself is
	// read on a TLS connection with the same configuration that writes
	// nothing, which got it 1000 times of 1000.
	for _, c := range []struct {
		what  string
		conf  *tls.Config
		alert string
	}{{
		what:  "another SVID of the trust domain (" + billingEnvoy.String() + ")",
		conf:  tlsconfig.MTLSClientConfig(billing, bundle, serverIsExtAuthz),
		alert: "remote error: tls: bad certificate",
	}, {
		what:  "no client certificate",
		conf:  tlsconfig.TLSClientConfig(bundle, serverIsExtAuthz),
		alert: "remote error: tls: certificate required",
	}} {
		resp, err := checkOnce(t, ea.Addr, c.conf, checkRequest(stack.Analyst, "GET", "/campaigns/q3", token))
		msg := status.Convert(err).Message()
		t.Logf("mTLS listener, %s: %v", c.what, err)
		if resp != nil || status.Code(err) != codes.Unavailable || !strings.Contains(msg, "error reading server preface: "+c.alert) &&
			!strings.Contains(msg, "write: broken pipe") && !strings.Contains(msg, "write: connection reset by peer") {
			t.Fatalf("Check over mTLS with %s: answer %v, error %v; want no answer and %s with %q (or the preface's write failing on the closed connection)",
				c.what, prototext.Format(resp), err, codes.Unavailable, "error reading server preface: "+c.alert)
		}
		if got := tlsAlert(t, ea.Addr, c.conf); got != c.alert {
			t.Fatalf("TLS connection to the mTLS listener with %s: got %q, want the server's alert %q", c.what, got, c.alert)
		}
	}
	// The client's own verdict: the Envoy, admitted but expecting another
	// server, ends the handshake itself, naming the ID it was shown (gRPC
	// quotes the handshake's error, hence the escaped quotes).
	resp, err = checkOnce(t, ea.Addr, tlsconfig.MTLSClientConfig(envoy, bundle, tlsconfig.AuthorizeID(stack.ServiceID)),
		checkRequest(stack.Analyst, "GET", "/campaigns/q3", token))
	t.Logf("mTLS listener, the Envoy expecting %s: %v", stack.ServiceID, err)
	if want := `transport: authentication handshake failed: unexpected ID \"` + stack.ExtAuthzID.String() + `\"`; resp != nil ||
		status.Code(err) != codes.Unavailable || !strings.Contains(status.Convert(err).Message(), want) {
		t.Fatalf("Check over mTLS expecting the server to be %s: answer %v, error %v; want no answer and %s with %q",
			stack.ServiceID, prototext.Format(resp), err, codes.Unavailable, want)
	}
	// agentid-extauthz's own count agrees: the refused clients never
	// reached Check.
	if n := ea.ChecksTotal(t); n != answered {
		t.Fatalf("agentid-extauthz over mTLS counted %v Check calls, want the %d the Envoy made", n, answered)
	}
}
