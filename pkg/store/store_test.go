package store

import (
	"errors"
	"testing"

	"github.com/agentid/agentid/pkg/delegation"
)

func TestFilterValidate(t *testing.T) {
	tests := []struct {
		name   string
		filter Filter
		want   string
	}{
		{"empty", Filter{}, ""},
		{"user", Filter{UserIssuer: "https://idp.example.com", UserSubject: "alice"}, ""},
		{"active", Filter{State: delegation.StateActive}, ""},
		{"revoked", Filter{State: delegation.StateRevoked}, ""},
		{"issuer only", Filter{UserIssuer: "https://idp.example.com"}, "store: invalid argument: filter needs both user issuer and subject, or neither"},
		{"subject only", Filter{UserSubject: "alice"}, "store: invalid argument: filter needs both user issuer and subject, or neither"},
		{"expired", Filter{State: delegation.StateExpired}, "store: invalid argument: filter state expired is never stored"},
		{"unknown state", Filter{State: delegation.State(9)}, "store: invalid argument: filter state 9 is unknown"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.filter.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil || err.Error() != tt.want || !errors.Is(err, ErrInvalidArgument) {
				t.Fatalf("Validate() = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestPageLimit(t *testing.T) {
	tests := []struct {
		size int
		want int
		err  string
	}{
		{0, DefaultPageSize, ""},
		{1, 1, ""},
		{MaxPageSize, MaxPageSize, ""},
		{MaxPageSize + 1, MaxPageSize, ""},
		{-1, 0, "store: invalid argument: page size -1 is negative"},
	}
	for _, tt := range tests {
		got, err := Page{Size: tt.size}.Limit()
		if tt.err != "" {
			if err == nil || err.Error() != tt.err || !errors.Is(err, ErrInvalidArgument) {
				t.Errorf("Page{Size: %d}.Limit() error = %v, want %q", tt.size, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("Page{Size: %d}.Limit() = %d, %v; want %d", tt.size, got, err, tt.want)
		}
	}
}
