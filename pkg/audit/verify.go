package audit

import (
	"fmt"
	"iter"
	"math"
	"strings"
)

// ChainError says where and why a chain failed verification. Sequence is the
// first bad sequence number: the sequence number of the event found wrong,
// or, for a truncated tail, of the first event missing.
type ChainError struct {
	// Sequence is the first bad sequence number.
	Sequence uint64
	// Reason says what is wrong, e.g. "hash mismatch (event edited)".
	Reason string
	// Err is the underlying error when there is one (an ErrInvalidEvent from
	// Validate), else nil.
	Err error
}

// Error returns e.g. "audit: chain broken at sequence 7: hash mismatch (event edited)".
func (e *ChainError) Error() string {
	return fmt.Sprintf("audit: chain broken at sequence %d: %s", e.Sequence, e.Reason)
}

// Is makes every *ChainError match ErrChainBroken.
func (e *ChainError) Is(target error) bool { return target == ErrChainBroken }

// Unwrap returns Err.
func (e *ChainError) Unwrap() error { return e.Err }

// The reasons a ChainError gives. Tests and tools may match on them.
const (
	ReasonHashMismatch     = "hash mismatch (event edited)"
	ReasonPrevHashMismatch = "prev-hash mismatch (event deleted, inserted or reordered before it)"
	ReasonHeadMismatch     = "hash differs from the known head (chain rewritten)"
)

// VerifyConfig says which part of a log a Verifier checks.
type VerifyConfig struct {
	// From is the event just before the first one verified. The zero Anchor
	// means the start of the log: the first event must have sequence 1 and a
	// zero PrevHash. Set it to verify a page or a tail of the log (e.g. from
	// the anchor of the last event of the previous ListEvents page).
	From Anchor
	// Head, if not zero, is an event the chain is known to contain (the head
	// of the log when it was last checked, or an anchor kept elsewhere). The
	// event with Head.Sequence must have Head.Hash, and Close fails if the
	// events end before it: the only way to detect that events were cut off
	// the end of the log, since a truncated chain is otherwise a valid chain.
	// Events after Head are accepted (the log grew).
	Head Anchor
}

// Verifier checks a chain of events one at a time, so that an export of any
// size can be verified in constant memory and the store can verify its own
// log on open with the same code. Call Add for each event in order, then
// Close. The zero Verifier verifies a whole log from its start.
//
// For each event Add checks, in this order: that the event is valid
// (Validate), that its Hash is the hash of its content, that its Sequence is
// the next one, that its PrevHash is the Hash of the event before (or of
// From), and that it matches Head if it is at Head's sequence. The first
// failure is returned as a *ChainError and is sticky: every later Add and
// Close return it again.
type Verifier struct {
	config VerifyConfig
	last   Anchor // the last event verified, or config.From
	count  uint64 // events verified
	err    error
}

// NewVerifier returns a Verifier for config.
func NewVerifier(config VerifyConfig) *Verifier {
	return &Verifier{config: config, last: config.From}
}

// Add verifies the next event. It does not keep e.
func (v *Verifier) Add(e *Event) error {
	if v.err != nil {
		return v.err
	}
	v.err = v.check(e)
	if v.err != nil {
		return v.err
	}
	v.last = e.Anchor()
	v.count++
	return nil
}

func (v *Verifier) check(e *Event) error {
	fail := func(format string, args ...any) error {
		return &ChainError{Sequence: e.Sequence, Reason: fmt.Sprintf(format, args...)}
	}
	if err := e.Validate(); err != nil {
		return &ChainError{Sequence: e.Sequence, Reason: strings.TrimPrefix(err.Error(), "audit: "), Err: err}
	}
	if e.ComputeHash() != e.Hash {
		return fail(ReasonHashMismatch)
	}
	first := v.count == 0
	switch {
	case v.last.Sequence == math.MaxUint64 || e.Sequence <= v.last.Sequence && !first:
		return fail("sequence not increasing (previous %d)", v.last.Sequence)
	case e.Sequence != v.last.Sequence+1 && first:
		return fail("first event has sequence %d, expected %d", e.Sequence, v.last.Sequence+1)
	case e.Sequence != v.last.Sequence+1:
		return fail("sequence gap (expected %d)", v.last.Sequence+1)
	case e.PrevHash != v.last.Hash && first && v.config.From.IsZero():
		return fail("first event's prev-hash is not zero")
	case e.PrevHash != v.last.Hash && first:
		return fail("first event's prev-hash does not match the anchor")
	case e.PrevHash != v.last.Hash:
		return fail(ReasonPrevHashMismatch)
	case !v.config.Head.IsZero() && e.Sequence == v.config.Head.Sequence && e.Hash != v.config.Head.Hash:
		return fail(ReasonHeadMismatch)
	}
	return nil
}

// Close reports the first error Add returned, or, when Head is set and the
// events ended before it, a *ChainError naming the first missing sequence.
func (v *Verifier) Close() error {
	if v.err != nil {
		return v.err
	}
	if h := v.config.Head; !h.IsZero() && v.last.Sequence < h.Sequence {
		return &ChainError{
			Sequence: v.last.Sequence + 1,
			Reason:   fmt.Sprintf("chain ends at sequence %d before the known head %d (tail truncated)", v.last.Sequence, h.Sequence),
		}
	}
	return nil
}

// Last returns the anchor of the last event verified (From if none was).
// After a successful Close it is the head of the verified chain: keep it to
// verify the next page, or to check later that the log still reaches it.
func (v *Verifier) Last() Anchor { return v.last }

// Count returns how many events were verified.
func (v *Verifier) Count() uint64 { return v.count }

// Verify checks a whole log, from sequence 1 to the last event events
// yields. It returns the first error the sequence yields as is (a read or
// decode error) or the first *ChainError. Verify cannot tell that events
// were removed from the end of the log: use VerifyWith and a known Head.
func Verify(events iter.Seq2[*Event, error]) error {
	_, err := VerifyWith(VerifyConfig{}, events)
	return err
}

// VerifyWith checks events as config says and returns the anchor of the last
// event verified.
func VerifyWith(config VerifyConfig, events iter.Seq2[*Event, error]) (Anchor, error) {
	v := NewVerifier(config)
	for e, err := range events {
		if err != nil {
			return v.Last(), err
		}
		if err := v.Add(e); err != nil {
			return v.Last(), err
		}
	}
	return v.Last(), v.Close()
}

// VerifySlice is Verify over a slice.
func VerifySlice(events []Event) error { return Verify(FromSlice(events)) }

// FromSlice yields pointers to the events of a slice, in order, with nil
// errors: the adapter from a slice to the functions of this package that
// stream.
func FromSlice(events []Event) iter.Seq2[*Event, error] {
	return func(yield func(*Event, error) bool) {
		for i := range events {
			if !yield(&events[i], nil) {
				return
			}
		}
	}
}
