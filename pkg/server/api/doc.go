// Package api holds what agentid-server's gRPC services share, as SPIRE's
// pkg/server/api does: who the caller is (Caller, set by IdentifyUnary and
// IdentifyStream from the connection, never from the request; the local
// socket's LocalCredentials), the refusal recorder (Denier: a denied audit
// event per refusal, rate limited per caller across all services), the
// server's metrics, and the answers every handler gives the same way
// (Invalid naming the field, StoreError failing closed with UNAVAILABLE).
//
// The services themselves are in api/<service>/v1, each with Config, New
// and RegisterService; who may call what is in pkg/server/authz.
package api
