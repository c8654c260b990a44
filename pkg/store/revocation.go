package store

import (
	"fmt"
	"maps"
	"math"
	"strconv"
	"time"

	"github.com/agentid/agentid/pkg/audit"
	"github.com/agentid/agentid/pkg/delegation"
)

// Prepare checks r and fills its defaults (At from now, the event's time and
// delegation id), the same in every store. checkEvent is the store's own
// event check; it is run on r.Event carrying the longest details the store
// adds while cascading, so a malformed event is refused before any write.
func (r *Revocation) Prepare(now func() time.Time, checkEvent func(*audit.Event) error) error {
	if r.ID.IsZero() {
		return fmt.Errorf("%w: empty delegation id", ErrInvalidArgument)
	}
	if len(r.Reason) > delegation.MaxReasonLength {
		return fmt.Errorf("%w: reason is %d bytes, at most %d", ErrInvalidArgument, len(r.Reason), delegation.MaxReasonLength)
	}
	if r.At.IsZero() {
		r.At = now()
	}
	r.At = r.At.UTC().Round(0)
	if r.Event.Time.IsZero() {
		r.Event.Time = r.At
	}
	if r.Event.DelegationID == "" {
		r.Event.DelegationID = r.ID.String()
	}
	if r.Event.DelegationID != r.ID.String() {
		return fmt.Errorf("%w: event delegation id %q differs from %s", ErrInvalidArgument, r.Event.DelegationID, r.ID)
	}
	for _, extra := range [][2]string{
		{DetailCascadeCount, strconv.Itoa(math.MaxInt32)},
		{DetailCascadeOf, r.ID.String()},
	} {
		probe := r.Event
		probe.Detail = make(map[string]string, len(r.Event.Detail)+1)
		maps.Copy(probe.Detail, r.Event.Detail)
		probe.Detail[extra[0]] = extra[1]
		if err := checkEvent(&probe); err != nil {
			return err
		}
	}
	return nil
}
