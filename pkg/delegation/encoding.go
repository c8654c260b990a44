package delegation

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// The text and JSON forms below are what stores persist. Every decoder runs
// the same validation as the constructors, so a corrupted or hand-edited
// record cannot come back as a valid value.

// MarshalText implements encoding.TextMarshaler.
func (id ID) MarshalText() ([]byte, error) { return []byte(id.s), nil }

// UnmarshalText implements encoding.TextUnmarshaler; the empty text is the zero ID.
func (id *ID) UnmarshalText(b []byte) error {
	if len(b) == 0 {
		*id = ID{}
		return nil
	}
	parsed, err := ParseID(string(b))
	if err != nil {
		return err
	}
	*id = parsed
	return nil
}

// MarshalJSON encodes the set as a sorted JSON array of strings.
func (s ScopeSet) MarshalJSON() ([]byte, error) { return json.Marshal(s.Strings()) }

// UnmarshalJSON decodes a JSON array of scopes, validating each.
func (s *ScopeSet) UnmarshalJSON(b []byte) error {
	var list []string
	if err := json.Unmarshal(b, &list); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidScope, err)
	}
	set, err := ParseScopes(list)
	if err != nil {
		return err
	}
	*s = set
	return nil
}

type userJSON struct {
	Issuer  string `json:"iss"`
	Subject string `json:"sub"`
	Email   string `json:"email,omitempty"`
}

// MarshalJSON encodes the user as {"iss","sub","email"}.
func (u User) MarshalJSON() ([]byte, error) {
	return json.Marshal(userJSON{Issuer: u.issuer, Subject: u.subject, Email: u.email})
}

// UnmarshalJSON decodes and validates a user.
func (u *User) UnmarshalJSON(b []byte) error {
	var j userJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidUser, err)
	}
	parsed, err := NewUser(j.Issuer, j.Subject, j.Email)
	if err != nil {
		return err
	}
	*u = parsed
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (i Intent) MarshalText() ([]byte, error) { return []byte(i.s), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (i *Intent) UnmarshalText(b []byte) error {
	parsed, err := ParseIntent(string(b))
	if err != nil {
		return err
	}
	*i = parsed
	return nil
}

type delegationJSON struct {
	ID           ID            `json:"id"`
	Parent       ID            `json:"parent,omitempty"`
	Root         ID            `json:"root"`
	Agent        spiffeid.ID   `json:"agent"`
	User         User          `json:"user"`
	Scopes       ScopeSet      `json:"scopes"`
	Chain        []spiffeid.ID `json:"chain"`
	MaxDepth     int           `json:"max_depth"`
	Intent       Intent        `json:"intent,omitempty"`
	CreatedBy    spiffeid.ID   `json:"created_by,omitzero"`
	CreatedAt    time.Time     `json:"created_at"`
	ExpiresAt    time.Time     `json:"expires_at"`
	State        string        `json:"state"`
	RevokedAt    time.Time     `json:"revoked_at,omitzero"`
	RevokeReason string        `json:"revoke_reason,omitempty"`
}

// MarshalJSON encodes d in the stored form.
func (d *Delegation) MarshalJSON() ([]byte, error) {
	return json.Marshal(delegationJSON{
		ID: d.ID, Parent: d.Parent, Root: d.Root, Agent: d.Agent, User: d.User,
		Scopes: d.Scopes, Chain: d.Chain, MaxDepth: d.MaxDepth, Intent: d.Intent,
		CreatedBy: d.CreatedBy, CreatedAt: d.CreatedAt, ExpiresAt: d.ExpiresAt,
		State: d.State.String(), RevokedAt: d.RevokedAt, RevokeReason: d.RevokeReason,
	})
}

// UnmarshalJSON decodes the stored form and validates it.
func (d *Delegation) UnmarshalJSON(b []byte) error {
	var j delegationJSON
	if err := json.Unmarshal(b, &j); err != nil {
		if isOwnError(err) {
			return err // a field's own validation error already names the field
		}
		return fmt.Errorf("%w: %w", ErrInvalidDelegation, err)
	}
	state, err := ParseState(j.State)
	if err != nil {
		return err
	}
	out := Delegation{
		ID: j.ID, Parent: j.Parent, Root: j.Root, Agent: j.Agent, User: j.User,
		Scopes: j.Scopes, Chain: j.Chain, MaxDepth: j.MaxDepth, Intent: j.Intent,
		CreatedBy: j.CreatedBy, CreatedAt: j.CreatedAt, ExpiresAt: j.ExpiresAt,
		State: state, RevokedAt: j.RevokedAt, RevokeReason: j.RevokeReason,
	}
	if err := out.Validate(); err != nil {
		return err
	}
	*d = out
	return nil
}

func isOwnError(err error) bool {
	for _, sentinel := range []error{ErrInvalidID, ErrInvalidScope, ErrInvalidUser, ErrInvalidIntent, ErrInvalidDelegation} {
		if errors.Is(err, sentinel) {
			return true
		}
	}
	return false
}
