package delegation

import (
	"fmt"
	"net/url"
	"strings"
	"unicode/utf8"
)

// Bounds on the parts of a user identity. OIDC does not bound them; these are
// generous for real issuers and keep one token from bloating every record.
const (
	MaxIssuerLength  = 512
	MaxSubjectLength = 255 // OpenID Connect Core §2: sub is at most 255 ASCII characters
	MaxEmailLength   = 320
)

// User is the delegating person (or any OIDC subject) as verified from their
// token: an issuer and a subject, which together are unique, and the email
// when the issuer asserts one.
type User struct {
	issuer  string
	subject string
	email   string
}

// NewUser validates a user identity. The issuer must be an absolute https URL
// (http only for loopback hosts, as in tests); subject is required; email is
// optional.
func NewUser(issuer, subject, email string) (User, error) {
	if err := checkText("issuer", issuer, MaxIssuerLength, true); err != nil {
		return User{}, err
	}
	u, err := url.Parse(issuer)
	if err != nil || u.Host == "" || !(u.Scheme == "https" || u.Scheme == "http" && isLoopbackHost(u.Hostname())) {
		return User{}, fmt.Errorf("%w: issuer must be an absolute https URL", ErrInvalidUser)
	}
	// OpenID Connect Discovery §2: no query or fragment. It also keeps the
	// "issuer#subject" form of String unambiguous.
	if u.RawQuery != "" || u.Fragment != "" || strings.Contains(issuer, "#") || strings.Contains(issuer, "?") {
		return User{}, fmt.Errorf("%w: issuer must not have a query or fragment", ErrInvalidUser)
	}
	if err := checkText("subject", subject, MaxSubjectLength, true); err != nil {
		return User{}, err
	}
	if err := checkText("email", email, MaxEmailLength, false); err != nil {
		return User{}, err
	}
	return User{issuer: issuer, subject: subject, email: email}, nil
}

func isLoopbackHost(h string) bool {
	return h == "localhost" || h == "127.0.0.1" || h == "::1"
}

func checkText(field, s string, max int, required bool) error {
	switch {
	case s == "" && required:
		return fmt.Errorf("%w: %s is empty", ErrInvalidUser, field)
	case len(s) > max:
		return fmt.Errorf("%w: %s is %d bytes, at most %d", ErrInvalidUser, field, len(s), max)
	case !utf8.ValidString(s):
		return fmt.Errorf("%w: %s is not valid UTF-8", ErrInvalidUser, field)
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("%w: %s contains a control character", ErrInvalidUser, field)
		}
	}
	return nil
}

// Issuer is the OIDC issuer URL.
func (u User) Issuer() string { return u.issuer }

// Subject is the subject at the issuer.
func (u User) Subject() string { return u.subject }

// Email is the user's email, or "" when the issuer gave none.
func (u User) Email() string { return u.email }

// IsZero reports whether u is the zero User.
func (u User) IsZero() bool { return u.issuer == "" }

// String returns "issuer#subject", a compact form for logs and audit actors.
func (u User) String() string { return u.issuer + "#" + u.subject }
