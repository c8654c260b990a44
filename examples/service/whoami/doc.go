// Package whoami is the example service: it authenticates agent calls with
// pkg/verify (the agent's X509-SVID on mTLS and its delegated JWT-SVID,
// which must belong together, and a revocation watch on agentid-server) and
// answers GET /whoami with the agent, user, scopes and chain it saw.
package whoami
