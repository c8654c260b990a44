package sidecar

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzDecodeBody feeds arbitrary bodies to the API's JSON decoder: it
// either fills the request or fails with the sidecar's own error, and never
// reads past the limit.
func FuzzDecodeBody(f *testing.F) {
	f.Add(`{"user_token":"x","scopes":["a"],"ttl":"5m"}`)
	f.Add(`{"user_token":"x","admin":true}`)
	f.Add(`{}{}`)
	f.Add(`[`)
	f.Add(`{"scopes":"a"}`)
	f.Add(strings.Repeat(`[`, 5000))
	f.Fuzz(func(t *testing.T, body string) {
		w := httptest.NewRecorder()
		r := httptest.NewRequest("POST", "/v1/delegations", strings.NewReader(body))
		var req CreateDelegationRequest
		err := decodeBody(http.MaxBytesReader(w, r.Body, 1024), &req)
		if err != nil && !strings.HasPrefix(err.Error(), "sidecar: ") && !strings.HasPrefix(err.Error(), "http: request body too large") {
			t.Fatalf("error %q lacks the package prefix", err)
		}
	})
}
