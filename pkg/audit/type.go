package audit

import (
	"fmt"
	"strconv"
)

// typeNames are the stable names of the types. They appear in the JSON form
// and in the canonical encoding, so they can never change: a rename would
// break every chain that holds the old name.
var typeNames = [...]string{
	TypeUnspecified:       "unspecified",
	TypeDelegationCreated: "delegation_created",
	TypeSubDelegated:      "sub_delegated",
	TypeRevoked:           "revoked",
	TypeDenied:            "denied",
	TypeTokenIssued:       "token_issued",
	TypeAgentSynced:       "agent_synced",
	TypeAuditPruned:       "audit_pruned",
}

// String returns the type's stable name, e.g. "delegation_created". A value
// outside the enum prints as "type(<n>)", which ParseType does not accept.
func (t Type) String() string {
	if t >= 0 && int(t) < len(typeNames) {
		return typeNames[t]
	}
	return "type(" + strconv.Itoa(int(t)) + ")"
}

// Valid reports whether t is one of the types an event may be recorded with
// (TypeUnspecified is not).
func (t Type) Valid() bool { return t > TypeUnspecified && int(t) < len(typeNames) }

// ParseType returns the type named s. It accepts every name String returns
// for a valid type and "unspecified" (so that a filter or a decoder can see
// the zero value and reject it with its own message); anything else wraps
// ErrUnknownType.
func ParseType(s string) (Type, error) {
	for t, name := range typeNames {
		if s == name {
			return Type(t), nil
		}
	}
	return TypeUnspecified, fmt.Errorf("%w %q", ErrUnknownType, s)
}

// MarshalText implements encoding.TextMarshaler with the type's name; it
// refuses a value outside the enum.
func (t Type) MarshalText() ([]byte, error) {
	if t < 0 || int(t) >= len(typeNames) {
		return nil, fmt.Errorf("%w %d", ErrUnknownType, int(t))
	}
	return []byte(typeNames[t]), nil
}

// UnmarshalText implements encoding.TextUnmarshaler with ParseType.
func (t *Type) UnmarshalText(b []byte) error {
	parsed, err := ParseType(string(b))
	if err != nil {
		return err
	}
	*t = parsed
	return nil
}
