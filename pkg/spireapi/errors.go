package spireapi

import "errors"

// ErrMalformedResponse is wrapped by every error that reports an answer from
// the SPIRE server that does not hold what the API promises: a batch with the
// wrong number of results, an entry or bundle that does not parse, an
// X509-SVID minted for another SPIFFE ID or another key. Such an error will not
// go away by retrying the same call; callers that retry transport failures can
// stop on this one.
var ErrMalformedResponse = errors.New("spireapi: malformed response from SPIRE server")
