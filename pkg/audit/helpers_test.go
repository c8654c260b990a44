package audit_test

import (
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/agentid/agentid/pkg/audit"
)

var t0 = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

// newEvent returns an unsealed valid event; i varies its content.
func newEvent(i int) audit.Event {
	types := []audit.Type{audit.TypeDelegationCreated, audit.TypeSubDelegated, audit.TypeTokenIssued,
		audit.TypeDenied, audit.TypeRevoked, audit.TypeAgentSynced}
	return audit.Event{
		Time:         t0.Add(time.Duration(i) * 1500 * time.Millisecond),
		Type:         types[i%len(types)],
		Actor:        "spiffe://example.org/agent/a" + strconv.Itoa(i),
		DelegationID: "dlg_01jd3x000000000000000000" + strconv.Itoa(1000+i),
		Agent:        "spiffe://example.org/agent/b",
		User:         "https://idp.example.com#alice",
		Detail: map[string]string{
			"scopes": "campaigns:read compliance:check",
			"reason": "line one\nline <two> & \"three\" é " + strconv.Itoa(i),
		},
	}
}

// chain returns n valid events sealed into a chain from sequence 1.
func chain(tb testing.TB, n int) []audit.Event {
	tb.Helper()
	events := make([]audit.Event, n)
	var prev audit.Hash
	for i := range events {
		e := newEvent(i)
		if err := e.Validate(); err != nil {
			tb.Fatalf("event %d: %v", i, err)
		}
		e.Seal(uint64(i+1), prev)
		prev = e.Hash
		events[i] = e
	}
	return events
}

// cloneEvents deep-copies events so a tampering case cannot affect another.
func cloneEvents(events []audit.Event) []audit.Event {
	out := make([]audit.Event, len(events))
	for i, e := range events {
		if e.Detail != nil {
			d := make(map[string]string, len(e.Detail))
			for k, v := range e.Detail {
				d[k] = v
			}
			e.Detail = d
		}
		out[i] = e
	}
	return out
}

// errText returns err's text, or "" for nil, so tables can say "" for success.
func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// chainSeq returns the Sequence of a *ChainError, failing if err is another kind.
func chainSeq(tb testing.TB, err error) uint64 {
	tb.Helper()
	var ce *audit.ChainError
	if !errors.As(err, &ce) {
		tb.Fatalf("error %v is not a *ChainError", err)
	}
	if !errors.Is(err, audit.ErrChainBroken) {
		tb.Fatalf("error %v does not match ErrChainBroken", err)
	}
	return ce.Sequence
}
