package verify

import (
	"errors"
	"fmt"
	"unicode/utf8"

	josejson "github.com/go-jose/go-jose/v4/json"
)

// This file decodes the payload of a token whose signature verified, with
// go-jose's JSON decoder (the one go-jose decodes headers and go-spiffe
// claims with), into what json.Unmarshal yields for an `any`
// (map[string]any, []any, string, float64, bool, nil). That decoder refuses
// a member name that repeats (encoding/json keeps the last one, other
// verifiers may keep the first). What this file adds:
//
//   - nesting deeper than maxJSONDepth is an error, found by a pass over the
//     bytes before anything is decoded (the decoder recurses once a level);
//   - bytes that are not UTF-8 are an error (the decoder silently writes
//     U+FFFD for them).

// maxJSONDepth bounds nesting. agentid's claims nest three levels deep.
const maxJSONDepth = 32

var (
	errJSON      = errors.New("invalid JSON")
	errJSONDepth = fmt.Errorf("JSON nested deeper than %d levels", maxJSONDepth)
)

// decodeJSONObject decodes b, which must hold exactly one JSON object.
func decodeJSONObject(b []byte) (map[string]any, error) {
	if !utf8.Valid(b) {
		return nil, errJSON
	}
	if err := checkDepth(b); err != nil {
		return nil, err
	}
	var m map[string]any
	if err := josejson.Unmarshal(b, &m); err != nil || m == nil { // nil: the text was null
		return nil, errJSON
	}
	return m, nil
}

// checkDepth refuses b if its brackets nest deeper than maxJSONDepth,
// skipping strings. b need not be valid JSON: the decoder judges that.
func checkDepth(b []byte) error {
	depth := 0
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '"':
			for i++; i < len(b) && b[i] != '"'; i++ {
				if b[i] == '\\' {
					i++ // the escaped byte cannot end the string
				}
			}
		case '{', '[':
			if depth++; depth > maxJSONDepth {
				return errJSONDepth
			}
		case '}', ']':
			depth--
		}
	}
	return nil
}
