package oidcauth_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/agentid/agentid/pkg/oidcauth"
)

// A server maps the two sentinels to its answers and logs the reason; the
// caller never sees the token or why it was refused.
func ExampleAuthenticator_Authenticate() {
	auth, err := oidcauth.New(oidcauth.Config{
		Issuers: []oidcauth.IssuerConfig{{
			URL:                  "https://idp.example.com",
			Audiences:            []string{"chat-frontend"},
			RequireVerifiedEmail: true,
		}},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	_, err = auth.Authenticate(context.Background(), "not-a-token")
	switch {
	case errors.Is(err, oidcauth.ErrIssuerUnavailable):
		fmt.Println("unavailable:", oidcauth.ErrIssuerUnavailable)
	case err != nil:
		fmt.Println("to the caller:", oidcauth.ErrInvalidToken)
		fmt.Println("to the log:", oidcauth.ReasonOf(err))
	}
	// Output:
	// to the caller: oidcauth: invalid user token
	// to the log: malformed
}
