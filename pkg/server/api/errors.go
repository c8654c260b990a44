package api

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/agentid/agentid/pkg/delegation"
	"github.com/agentid/agentid/pkg/store"
	"github.com/sirupsen/logrus"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// MaxSPIFFEIDLength bounds a SPIFFE ID in a request, as the delegation
// decoder does (pkg/apiconv).
const MaxSPIFFEIDLength = 2048

// Invalid is the INVALID_ARGUMENT answer naming the field.
func Invalid(field string, err error) error {
	return status.Errorf(codes.InvalidArgument, "%s: %v", field, err)
}

// ParseSPIFFEID parses a required SPIFFE ID field of a request.
func ParseSPIFFEID(field, s string) (spiffeid.ID, error) {
	if s == "" {
		return spiffeid.ID{}, status.Errorf(codes.InvalidArgument, "%s: is required", field)
	}
	if len(s) > MaxSPIFFEIDLength {
		return spiffeid.ID{}, status.Errorf(codes.InvalidArgument, "%s: longer than %d bytes", field, MaxSPIFFEIDLength)
	}
	id, err := spiffeid.FromString(s)
	if err != nil {
		return spiffeid.ID{}, Invalid(field, err)
	}
	return id, nil
}

// ParseDelegationID parses a delegation id field of a request.
func ParseDelegationID(field, s string) (delegation.ID, error) {
	id, err := delegation.ParseID(s)
	if err != nil {
		return delegation.ID{}, Invalid(field, err)
	}
	return id, nil
}

// StoreError logs a store failure, counts it, and answers without
// internals: UNAVAILABLE naming the operation ("failed to <op>", and for a
// database that cannot be reached, saying so), or the context's own code
// when the request ended. A store that cannot be read or
// written fails the request: nothing is issued.
func StoreError(log logrus.FieldLogger, m *Metrics, op string, err error) error {
	m.StoreErrors.Inc()
	log.WithError(err).WithField("op", op).Error("Store operation failed")
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return status.FromContextError(err).Err()
	}
	if errors.Is(err, store.ErrUnavailable) {
		return status.Error(codes.Unavailable, fmt.Sprintf("failed to %s: the store's database is unreachable; retry later", op))
	}
	return status.Error(codes.Unavailable, fmt.Sprintf("failed to %s", op))
}

// TruncateUTF8 cuts s to at most max bytes without splitting a character.
func TruncateUTF8(s string, max int) string {
	if len(s) <= max {
		return s
	}
	for max > 0 && s[max]&0xc0 == 0x80 {
		max--
	}
	return s[:max]
}

// LogOrDiscard returns log, or a logger that discards for nil: libraries
// are silent by default.
func LogOrDiscard(log logrus.FieldLogger) logrus.FieldLogger {
	if log != nil {
		return log
	}
	l := logrus.New()
	l.Out = discard{}
	return l
}

// ClockOrNow returns clock, or time.Now for nil.
func ClockOrNow(clock func() time.Time) func() time.Time {
	if clock != nil {
		return clock
	}
	return time.Now
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
