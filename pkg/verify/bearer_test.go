package verify_test

import (
	"errors"
	"testing"

	"github.com/agentid/agentid/pkg/verify"
)

func TestParseBearer(t *testing.T) {
	tests := []struct {
		name    string
		values  []string
		token   string
		wantErr error
		msg     string
	}{
		{"none", nil, "", verify.ErrNoToken, "verify: no token"},
		{"bearer", []string{"Bearer abc.def.ghi"}, "abc.def.ghi", nil, ""},
		{"lower-case scheme", []string{"bearer abc"}, "abc", nil, ""},
		{"two values", []string{"Bearer a", "Bearer b"}, "", verify.ErrBadAuthorization, "verify: authorization is not one bearer token: 2 values"},
		{"basic", []string{"Basic YTpi"}, "", verify.ErrBadAuthorization, "verify: authorization is not one bearer token: not a bearer token"},
		{"no token", []string{"Bearer "}, "", verify.ErrBadAuthorization, "verify: authorization is not one bearer token: not a bearer token"},
		{"no space", []string{"Bearer"}, "", verify.ErrBadAuthorization, "verify: authorization is not one bearer token: not a bearer token"},
		{"blank inside", []string{"Bearer a b"}, "", verify.ErrBadAuthorization, "verify: authorization is not one bearer token: not a bearer token"},
		{"tab inside", []string{"Bearer a\tb"}, "", verify.ErrBadAuthorization, "verify: authorization is not one bearer token: not a bearer token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			token, err := verify.ParseBearer(tt.values)
			if token != tt.token || !errors.Is(err, tt.wantErr) || (err != nil && err.Error() != tt.msg) {
				t.Fatalf("ParseBearer(%q) = %q, %v; want %q, %q", tt.values, token, err, tt.token, tt.msg)
			}
		})
	}
}
