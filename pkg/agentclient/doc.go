// Package agentclient is the agent's side of agentid for Go agents: it gets
// the agent's identity from the SPIFFE Workload API, fetches delegated
// JWT-SVIDs, calls services over mTLS with them, and asks agentid-server for
// delegations.
//
// # Identity
//
// An Agent watches the Workload API for the agent's X509-SVID and trust
// bundle:
//
//	agent, err := agentclient.New(ctx, agentclient.Config{
//		WorkloadAPIAddr: "unix:///run/spire/agent.sock",
//		ID:              spiffeid.RequireFromString("spiffe://example.org/agent/orchestrator"),
//	})
//	defer agent.Close()
//
// # Delegations
//
// A delegation lets the agent act for a user. The agent (or the front end
// the user logged into) creates one with the user's OIDC token, passes part
// of it to another agent, and revokes it when done:
//
//	server, _ := agent.DialServer("agentid-server:8443", spiffeid.RequireFromString("spiffe://example.org/agentid-server"))
//	d, err := server.CreateDelegation(ctx, agentclient.CreateRequest{
//		UserToken: idToken, Agent: agent.ID(), Scopes: []string{"campaigns:read"}, TTL: time.Hour,
//		Intent: "summarise the Q3 campaign",
//	})
//	sub, err := server.CreateSubDelegation(ctx, agentclient.SubDelegationRequest{Parent: d.ID, Agent: analyst, ...})
//	_, err = server.RevokeDelegation(ctx, d.ID, "task done")
//
// Errors from agentid-server keep their gRPC status: status.Code(err) is
// Unauthenticated for a refused user token, PermissionDenied for a policy
// refusal, and so on.
//
// # Calling a service for a user
//
// The Transport dials mTLS with the agent's X509-SVID, refuses a server
// whose SPIFFE ID is not the expected one (ErrPeerNotAuthorized, before a
// byte of the request is sent), and attaches "Authorization: Bearer
// <JWT-SVID>" for the delegation found in the request's context:
//
//	tr, _ := agent.Transport(crmID, "") // audience: the service's SPIFFE ID
//	client := &http.Client{Transport: tr}
//	req, _ := http.NewRequestWithContext(agentclient.WithDelegation(ctx, d.ID), "GET", "https://crm:8443/campaigns", nil)
//	resp, err := client.Do(req)
//
// gRPC clients use PerRPCCredentials with the same context key; they take
// the server's authorizer too, and send no token to any other server:
//
//	creds, _ := agentclient.NewPerRPCCredentials(agent.Tokens(), crmID.String(), tlsconfig.AuthorizeID(crmID))
//
// # Delegated tokens
//
// DelegatedTokens (agent.Tokens()) fetches a token with spiffe_id = the
// agent's ID and audience = [audience, claims.Marker(id)]; agentid's
// composer inside SPIRE strips the marker and adds the user, scopes and
// chain, or refuses. Tokens are cached until half their life. A refusal is
// ErrDelegationDenied, a transient failure ErrUnavailable; SPIRE gives both
// the same gRPC code, and the DelegatedTokens doc explains how, and how far,
// they are told apart.
//
// # Access tokens for OAuth resource servers
//
// Services that do not speak SPIFFE (MCP servers, APIs that take OAuth
// access tokens) get an RFC 9068 access token from agentid-server's
// authorization server instead: AccessTokens posts the delegated JWT-SVID
// (audience = the issuer) to the token endpoint named by the issuer's
// metadata and caches the answer until half its life. Through
// OAuthHTTPClient the agent presents its X509-SVID, and the token is bound
// to it:
//
//	at, _ := agent.AccessTokens("https://agentid.example.com", agent.OAuthHTTPClient(nil))
//	client := oauth2.NewClient(ctx, at.TokenSource(ctx, d.ID, "https://mcp.example.com/mcp", "campaigns:read"))
//
// Refusals wrap ErrDelegationDenied and an *oauth2.RetrieveError with the
// RFC 6749 code (invalid_grant, invalid_scope, invalid_target).
//
// For agents that are not written in Go, cmd/agentid-sidecar offers the
// same over a local HTTP API and an egress proxy (pkg/sidecar).
package agentclient
