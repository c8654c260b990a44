package aiagent

import "errors"

// Sentinel errors callers branch on. Errors returned by this package wrap one
// of these (errors.Is) and add the offending field or value.
var (
	// ErrInvalidManifest is returned for a manifest that is not a well-formed
	// agentid manifest: bad JSON, an unknown or repeated field, a missing or
	// malformed value.
	ErrInvalidManifest = errors.New("aiagent: invalid manifest")
	// ErrUnsupportedAPIVersion is returned for a manifest or signature file
	// whose apiVersion this version of the plugin does not know. It is kept
	// apart from ErrInvalidManifest so that a fleet rolling out a newer format
	// can tell "too new" from "broken".
	ErrUnsupportedAPIVersion = errors.New("aiagent: unsupported apiVersion")
	// ErrInvalidSignatureFile is returned for a signature file that is not
	// well formed (bad JSON, unknown field, bad base64, too large).
	ErrInvalidSignatureFile = errors.New("aiagent: invalid signature file")
	// ErrUnknownKeyID is returned when a signature names a key id that is not
	// configured.
	ErrUnknownKeyID = errors.New("aiagent: unknown signing key id")
	// ErrBadSignature is returned when a signature does not verify against
	// the configured key it names.
	ErrBadSignature = errors.New("aiagent: signature does not verify")
	// ErrInvalidKey is returned for a signing key id or public key that the
	// plugin cannot use (not PEM, not Ed25519 or ECDSA P-256, bad id).
	ErrInvalidKey = errors.New("aiagent: invalid signing key")
)
