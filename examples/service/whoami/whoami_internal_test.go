package whoami

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// Mounted without the verify middleware, the handler refuses rather than
// dereference a principal nobody verified.
func TestWhoamiWithoutMiddleware(t *testing.T) {
	w := httptest.NewRecorder()
	whoami(w, httptest.NewRequest("GET", "/whoami", nil))
	if w.Code != http.StatusInternalServerError || w.Body.String() != "whoami: no verified caller\n" {
		t.Fatalf("got %d %q", w.Code, w.Body.String())
	}
}
