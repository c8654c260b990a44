package delegation

import (
	"fmt"
	"unicode/utf8"
)

// MaxIntentLength bounds the stated intent of a delegation in bytes.
const MaxIntentLength = 2048

// Intent is the user's stated purpose of a delegation, in their own words
// ("check the spring campaign for GDPR issues"). It is recorded for audit so
// the chain "user intent → agent decision" can be read later; it grants
// nothing. Newlines and tabs are allowed, other control characters are not.
type Intent struct {
	s string
}

// ParseIntent validates an intent; the empty intent is allowed.
func ParseIntent(s string) (Intent, error) {
	if len(s) > MaxIntentLength {
		return Intent{}, fmt.Errorf("%w: %d bytes, at most %d", ErrInvalidIntent, len(s), MaxIntentLength)
	}
	if !utf8.ValidString(s) {
		return Intent{}, fmt.Errorf("%w: not valid UTF-8", ErrInvalidIntent)
	}
	for _, r := range s {
		if (r < 0x20 && r != '\n' && r != '\t') || r == 0x7f {
			return Intent{}, fmt.Errorf("%w: contains a control character", ErrInvalidIntent)
		}
	}
	return Intent{s: s}, nil
}

// String returns the intent's text.
func (i Intent) String() string { return i.s }
