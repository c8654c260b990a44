package authserver

import (
	"strings"
	"testing"
)

// FuzzParseForm: the strict form parser never panics and never accepts a
// repeated parameter.
func FuzzParseForm(f *testing.F) {
	f.Add("grant_type=a&assertion=b&resource=c")
	f.Add("a=1&a=2")
	f.Add("a=%zz;b")
	f.Fuzz(func(t *testing.T, body string) {
		form, ref := parseForm(body)
		if ref != nil {
			return
		}
		for k, v := range form {
			if len(v) != 1 {
				t.Fatalf("parameter %q accepted %d times", k, len(v))
			}
		}
	})
}

// FuzzUnverifiedSubject: reading sub before verification never panics and
// yields a SPIFFE ID or an error.
func FuzzUnverifiedSubject(f *testing.F) {
	f.Add("eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJzcGlmZmU6Ly9leGFtcGxlLm9yZy9hIn0.sig")
	f.Add("..")
	f.Add(strings.Repeat("a.", 10))
	f.Fuzz(func(t *testing.T, token string) {
		id, err := unverifiedSubject(token)
		if err == nil && id.IsZero() {
			t.Fatal("no error and no subject")
		}
	})
}
