package claims

import (
	"fmt"
	"strings"

	"github.com/agentid/agentid/pkg/delegation"
)

// MarkerPrefix is the default prefix of the marker audience. An agent that
// wants a token under delegation D fetches a JWT-SVID for the audiences
// [target, MarkerPrefix + D]; the composer strips the marker from aud.
const MarkerPrefix = "urn:agentid:delegation:"

// Marker returns the marker audience for id with the default prefix.
func Marker(id delegation.ID) string { return MarkerPrefix + id.String() }

// SplitAudience separates the marker from the other audiences. With no marker
// it returns the zero ID and aud unchanged. More than one marker, or a marker
// whose id is malformed, is ErrMarker: a token must be issued under exactly one
// delegation or none. Only the id is echoed in errors, never other audiences.
func SplitAudience(aud []string, prefix string) (rest []string, id delegation.ID, err error) {
	found := -1
	for i, a := range aud {
		if !strings.HasPrefix(a, prefix) {
			continue
		}
		if found >= 0 {
			return nil, delegation.ID{}, fmt.Errorf("%w: more than one marker audience", ErrMarker)
		}
		found = i
	}
	if found < 0 {
		return aud, delegation.ID{}, nil
	}
	id, err = delegation.ParseID(aud[found][len(prefix):])
	if err != nil {
		return nil, delegation.ID{}, fmt.Errorf("%w: %w", ErrMarker, err)
	}
	rest = make([]string, 0, len(aud)-1)
	rest = append(rest, aud[:found]...)
	rest = append(rest, aud[found+1:]...)
	return rest, id, nil
}
