package authserver

import (
	"encoding/json"
	"net/http"
)

// RFC 6749 §5.2, RFC 7662 and RFC 8707 error codes the endpoints answer.
const (
	ErrorInvalidRequest       = "invalid_request"
	ErrorInvalidClient        = "invalid_client"
	ErrorInvalidGrant         = "invalid_grant"
	ErrorUnsupportedGrantType = "unsupported_grant_type"
	ErrorInvalidScope         = "invalid_scope"
	ErrorInvalidTarget        = "invalid_target"
	ErrorServerError          = "server_error"
	ErrorTemporarilyUnavail   = "temporarily_unavailable"
)

// refusal is one answer of the token endpoint other than a token. status and
// code go to the client with description, a fixed text chosen here that
// never holds anything the client sent; reason is a short fixed code for the
// audit event and the log, detail may say more in the log only (never a
// token).
type refusal struct {
	status      int
	code        string
	description string
	reason      string
	detail      string
}

func refuse(status int, code, reason, description string) *refusal {
	return &refusal{status: status, code: code, reason: reason, description: description}
}

func (r *refusal) with(detail string) *refusal {
	c := *r
	c.detail = detail
	return &c
}

// The refusals, one per reason. Descriptions are fixed: a client learns what
// is wrong with its request, never anything about a token it sent.
var (
	refuseMethod        = refuse(http.StatusMethodNotAllowed, ErrorInvalidRequest, "method", "the token endpoint accepts POST only")
	refuseContentType   = refuse(http.StatusBadRequest, ErrorInvalidRequest, "content_type", "the request body must be application/x-www-form-urlencoded")
	refuseTooLarge      = refuse(http.StatusRequestEntityTooLarge, ErrorInvalidRequest, "too_large", "the request body is too large")
	refuseForm          = refuse(http.StatusBadRequest, ErrorInvalidRequest, "form", "the request body is not a valid form")
	refuseQuery         = refuse(http.StatusBadRequest, ErrorInvalidRequest, "query", "parameters must be sent in the request body, not the URL")
	refuseDuplicate     = refuse(http.StatusBadRequest, ErrorInvalidRequest, "duplicate_parameter", "a parameter is repeated")
	refuseNoGrantType   = refuse(http.StatusBadRequest, ErrorInvalidRequest, "no_grant_type", "grant_type is required")
	refuseGrantType     = refuse(http.StatusBadRequest, ErrorUnsupportedGrantType, "grant_type", "the grant type is not supported")
	refuseNoAssertion   = refuse(http.StatusBadRequest, ErrorInvalidRequest, "no_assertion", "assertion is required")
	refuseClientAuth    = refuse(http.StatusUnauthorized, ErrorInvalidClient, "client_auth_method", "the only client authentication is tls_client_auth with an X509-SVID")
	refuseClientID      = refuse(http.StatusUnauthorized, ErrorInvalidClient, "client_id", "client_id does not match the client certificate")
	refuseClientCert    = refuse(http.StatusUnauthorized, ErrorInvalidClient, "client_certificate", "the client certificate is not a valid X509-SVID of an accepted trust domain")
	refuseAssertion     = refuse(http.StatusBadRequest, ErrorInvalidGrant, "assertion", "the assertion is not a valid delegated JWT-SVID for this issuer")
	refuseAssertionSize = refuse(http.StatusBadRequest, ErrorInvalidGrant, "assertion_too_large", "the assertion is too large")
	refuseNoDelegation  = refuse(http.StatusBadRequest, ErrorInvalidGrant, "no_delegation", "the assertion carries no delegation")
	refuseInactive      = refuse(http.StatusBadRequest, ErrorInvalidGrant, "delegation_inactive", "the delegation is not active")
	refuseCertMismatch  = refuse(http.StatusBadRequest, ErrorInvalidGrant, "certificate_mismatch", "the assertion's subject is not the client certificate's SPIFFE ID")
	refuseNoResource    = refuse(http.StatusBadRequest, ErrorInvalidTarget, "no_resource", "resource is required")
	refuseResource      = refuse(http.StatusBadRequest, ErrorInvalidTarget, "unknown_resource", "the resource is not registered")
	refuseScopeSyntax   = refuse(http.StatusBadRequest, ErrorInvalidScope, "scope_syntax", "scope is malformed")
	refuseScopeWider    = refuse(http.StatusBadRequest, ErrorInvalidScope, "scope_not_granted", "a requested scope is not delegated or not allowed for the resource")
	refuseScopeEmpty    = refuse(http.StatusBadRequest, ErrorInvalidScope, "scope_empty", "the delegation holds no scope the resource allows")
	refuseStore         = refuse(http.StatusServiceUnavailable, ErrorTemporarilyUnavail, "store", "the server cannot decide now; retry")
	refuseSign          = refuse(http.StatusInternalServerError, ErrorServerError, "sign", "the server cannot issue tokens now")
)

type errorBody struct {
	Error       string `json:"error"`
	Description string `json:"error_description"`
}

func writeError(w http.ResponseWriter, r *refusal) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	if r.status == http.StatusMethodNotAllowed {
		h.Set("Allow", http.MethodPost)
	}
	w.WriteHeader(r.status)
	_ = json.NewEncoder(w).Encode(errorBody{Error: r.code, Description: r.description})
}
