package audit

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"iter"
	"strings"
)

// MaxLineLength bounds one line of a JSON Lines export in bytes, without the
// line end. Any event that passes Validate encodes to less, even with every
// character escaped; a longer line is refused before it is decoded, so a
// hostile export cannot make a reader hold more than this per event.
const MaxLineLength = 256 << 10

// LineError is an error about one line of a JSON Lines export.
type LineError struct {
	// Line is the 1-based line number.
	Line int
	// Err is what is wrong with it; it wraps ErrLineTooLong, ErrMalformedEvent
	// or ErrInvalidEvent, or is the reader's error.
	Err error
}

// Error returns e.g. `audit: line 3: malformed event: unknown field "x"`.
func (e *LineError) Error() string {
	return fmt.Sprintf("audit: line %d: %s", e.Line, strings.TrimPrefix(e.Err.Error(), "audit: "))
}

// Unwrap returns Err.
func (e *LineError) Unwrap() error { return e.Err }

// WriteJSONL writes events to w as JSON Lines: one MarshalJSON object per
// line, each ended by "\n", in the order given. It stops at the first error
// events yields and returns it, after writing the lines before it. Output is
// buffered; WriteJSONL flushes before it returns.
func WriteJSONL(w io.Writer, events iter.Seq2[*Event, error]) error {
	bw := bufio.NewWriter(w)
	for e, err := range events {
		if err != nil {
			_ = bw.Flush()
			return err
		}
		line, err := e.MarshalJSON()
		if err != nil {
			_ = bw.Flush()
			return fmt.Errorf("%w (event at sequence %d)", err, e.Sequence)
		}
		if _, err := bw.Write(append(line, '\n')); err != nil {
			return fmt.Errorf("audit: writing export: %w", err)
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("audit: writing export: %w", err)
	}
	return nil
}

// ReadJSONL reads a JSON Lines export from r, yielding one event per line in
// order. A line may end in "\n" or "\r\n"; the last may have no end. A line
// that is empty, longer than MaxLineLength or not an event (see
// UnmarshalJSON) yields a *LineError naming it and ends the sequence, as
// does an error from r. ReadJSONL decodes and checks each event but does not
// verify the chain: pass the sequence to Verify for that. The sequence reads
// r as it goes and can be ranged over once.
func ReadJSONL(r io.Reader) iter.Seq2[*Event, error] {
	return func(yield func(*Event, error) bool) {
		s := bufio.NewScanner(r)
		// Room for the longest line plus "\r\n", so that a line of exactly
		// MaxLineLength is read whole and longer ones are caught below.
		s.Buffer(make([]byte, 0, 64<<10), MaxLineLength+2)
		line := 0
		for s.Scan() {
			line++
			b := s.Bytes()
			var err error
			switch {
			case len(b) > MaxLineLength:
				err = fmt.Errorf("%w: more than %d bytes", ErrLineTooLong, MaxLineLength)
			case len(bytes.TrimSpace(b)) == 0:
				err = malformed("empty line")
			}
			var e Event
			if err == nil {
				err = e.UnmarshalJSON(b)
			}
			if err != nil {
				yield(nil, &LineError{Line: line, Err: err})
				return
			}
			if !yield(&e, nil) {
				return
			}
		}
		switch err := s.Err(); {
		case errors.Is(err, bufio.ErrTooLong):
			yield(nil, &LineError{Line: line + 1, Err: fmt.Errorf("%w: more than %d bytes", ErrLineTooLong, MaxLineLength)})
		case err != nil:
			yield(nil, &LineError{Line: line + 1, Err: fmt.Errorf("audit: reading export: %w", err)})
		}
	}
}
