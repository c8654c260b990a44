package sidecar

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// FuzzDecodeBody feeds arbitrary bodies to the API's JSON decoder, limited
// as the API limits it: it either fills the request or fails with the
// sidecar's own error, never reads more of the body than the limit (plus
// the one byte that proves it exceeded), and fails on every body longer
// than the limit.
func FuzzDecodeBody(f *testing.F) {
	const limit = 1024
	f.Add(`{"user_token":"x","scopes":["a"],"ttl":"5m"}`)
	f.Add(`{"user_token":"x","admin":true}`)
	f.Add(`{}{}`)
	f.Add(`[`)
	f.Add(`{"scopes":"a"}`)
	f.Add(strings.Repeat(`[`, 5000))
	f.Add(`{"user_token":"x"}` + strings.Repeat(" ", 2000))
	f.Add(`{"intent":"` + strings.Repeat("a", 2000) + `"}`)
	f.Fuzz(func(t *testing.T, body string) {
		w := httptest.NewRecorder()
		src := &countingReader{r: strings.NewReader(body)}
		var req CreateDelegationRequest
		err := decodeBody(http.MaxBytesReader(w, io.NopCloser(src), limit), &req)
		if err != nil && !strings.HasPrefix(err.Error(), "sidecar: ") && !strings.HasPrefix(err.Error(), "http: request body too large") {
			t.Fatalf("error %q lacks the package prefix", err)
		}
		if src.n > limit+1 {
			t.Fatalf("read %d bytes of a %d-byte body, limit %d", src.n, len(body), limit)
		}
		if len(body) > limit && err == nil {
			t.Fatalf("a %d-byte body was accepted under a %d-byte limit", len(body), limit)
		}
	})
}
