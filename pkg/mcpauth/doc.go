// Package mcpauth puts agentid behind the Model Context Protocol's
// authorization, on the official Go SDK (github.com/modelcontextprotocol/go-sdk):
// an MCP server accepts the RFC 9068 access tokens agentid-server issues,
// and an agent's MCP client gets them from its delegation.
//
// # Server
//
// The MCP server is an OAuth resource server for its canonical URI. It
// serves its RFC 9728 metadata, pointing at agentid-server, and puts its
// streamable HTTP handler behind a Verifier:
//
//	const resource = "https://mcp.example.com/mcp"
//	v, _ := mcpauth.NewVerifier(mcpauth.VerifierConfig{Issuer: "https://agentid.example.com", Resource: resource})
//	mux.Handle(mcpauth.MetadataPath(resource), mcpauth.MetadataHandler(resource, issuer, []string{"crm:read", "crm:write"}))
//	h, _ := mcpauth.Protect(mcp.NewStreamableHTTPHandler(getServer, nil), mcpauth.ProtectConfig{
//		Verifier: v, ResourceMetadataURL: "https://mcp.example.com" + mcpauth.MetadataPath(resource),
//		ToolScopes: map[string][]string{"update_contact": {"crm:write"}},
//	})
//	mux.Handle("/mcp", h)
//
// The Verifier checks the signature against agentid-server's JWKS (found
// through its RFC 8414 metadata, cached, fetched again for an unknown kid
// at most every RefreshInterval), typ at+jwt, iss, aud = the resource
// exactly (a token for another resource is refused, as the MCP spec
// requires), exp, and, for a token bound to the agent's X509-SVID
// (cnf.x5t#S256), that the TLS client certificate is that one: a token
// replayed by another agent over its own certificate is refused. A request
// without a valid token is 401 with WWW-Authenticate resource_metadata; a
// tool call whose scopes the token lacks is 403 with error="insufficient_scope"
// and the scopes needed. Serve the MCP server over TLS that requests client
// certificates (tls.RequestClientCert) to honour bound tokens.
//
// A tool handler reads who calls in one line:
//
//	caller, ok := mcpauth.CallerFrom(req.Extra.TokenInfo) // "agent X acting for user U via A"
//
// The token is verified locally: a revoked delegation's tokens are honoured
// until they expire (agentid-server's default TTL is 5 minutes). A server
// that must stop at once introspects (agentid-server's /introspect).
//
// # Client
//
// OAuthHandler is the go-sdk auth.OAuthHandler of an agent: access tokens
// from agentclient.AccessTokens for the delegation and the resource; on a
// 401 it checks that the resource's metadata names agentid-server, gets a
// new token and lets the transport retry once; on a 403 insufficient_scope
// the call fails with *InsufficientScopeError, which names the scopes the
// delegation lacks.
//
//	at, _ := agent.AccessTokens(issuer, agent.OAuthHTTPClient(nil))
//	oh, _ := mcpauth.NewOAuthHandler(mcpauth.ClientConfig{Tokens: at, Issuer: issuer, Delegation: d.ID, Resource: resource})
//	session, _ := mcp.NewClient(impl, nil).Connect(ctx, &mcp.StreamableClientTransport{
//		Endpoint: resource, OAuthHandler: oh, HTTPClient: agent.OAuthHTTPClient(nil)}, nil)
package mcpauth
