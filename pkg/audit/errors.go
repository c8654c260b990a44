package audit

import "errors"

// Sentinel errors callers branch on. Errors returned by this package wrap one
// of these (errors.Is) and add the offending field, line or sequence number.
var (
	// ErrInvalidEvent is returned by Validate for an event that may not be
	// recorded: a missing or unknown type, a zero time, a field that is too
	// long or not UTF-8, too much Detail.
	ErrInvalidEvent = errors.New("audit: invalid event")
	// ErrMalformedEvent is returned when the JSON form of an event cannot be
	// decoded: bad syntax, an unknown or repeated field, a hash that is not
	// 64 lower-case hex digits, an unknown type name.
	ErrMalformedEvent = errors.New("audit: malformed event")
	// ErrLineTooLong is returned by ReadJSONL for a line longer than
	// MaxLineLength; reading stops there, as the rest cannot be trusted to
	// start on a line boundary.
	ErrLineTooLong = errors.New("audit: line too long")
	// ErrChainBroken matches every *ChainError, for callers that only need to
	// know that verification failed because of the log's content (as opposed
	// to an I/O or decoding error).
	ErrChainBroken = errors.New("audit: chain broken")
	// ErrUnknownType is returned by ParseType for a name that is not a Type.
	ErrUnknownType = errors.New("audit: unknown event type")
	// ErrInvalidHash is returned by ParseHash for text that is not 64
	// lower-case hex digits.
	ErrInvalidHash = errors.New("audit: invalid hash")
	// ErrInvalidAnchor is returned by ParseAnchor for text that is not
	// "<sequence>:<hash>".
	ErrInvalidAnchor = errors.New("audit: invalid anchor")
)
