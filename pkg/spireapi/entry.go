package spireapi

import (
	"context"
	"fmt"
	"math"
	"time"

	entryv1 "github.com/spiffe/spire-api-sdk/proto/spire/api/server/entry/v1"
	apitypes "github.com/spiffe/spire-api-sdk/proto/spire/api/types"
)

// Page and batch sizes, as spire-controller-manager uses them: large enough
// that tens of thousands of entries take a few hundred calls, small enough
// that one call stays well under gRPC's 4 MiB message limit and does not hold
// SPIRE's datastore for long.
const (
	listPageSize    = 200
	createBatchSize = 50
	updateBatchSize = 50
	deleteBatchSize = 200
)

// EntryClient is the part of the SPIRE entry API a reconciler needs: read
// everything, write by batch. Each write returns one Status per item, in the
// order given; an error means a call failed as a whole, and the statuses
// returned with it cover the batches that completed before it.
type EntryClient interface {
	// ListEntries returns every registration entry on the server, following
	// pages until the last.
	ListEntries(ctx context.Context) ([]Entry, error)
	// CreateEntries creates entries, keeping caller-chosen IDs. SPIRE answers
	// ALREADY_EXISTS, with the existing entry in Status.Entry, when an entry
	// with the same SPIFFE ID, parent ID and selector set exists, whatever its
	// ID; and ALREADY_EXISTS without an entry when the ID is taken.
	CreateEntries(ctx context.Context, entries []Entry) ([]Status, error)
	// UpdateEntries replaces every field of the entries with the given IDs
	// (NOT_FOUND for an unknown ID).
	UpdateEntries(ctx context.Context, entries []Entry) ([]Status, error)
	// DeleteEntries deletes entries by ID (NOT_FOUND for an unknown ID).
	DeleteEntries(ctx context.Context, ids []string) ([]Status, error)
}

// ListEntries implements EntryClient.
func (c *Client) ListEntries(ctx context.Context) ([]Entry, error) {
	var out []Entry
	seen := make(map[string]bool)
	token := ""
	for {
		resp, err := c.entry.ListEntries(ctx, &entryv1.ListEntriesRequest{
			PageSize:  listPageSize,
			PageToken: token,
		})
		if err != nil {
			return nil, fmt.Errorf("spireapi: failed to list entries: %w", err)
		}
		for _, in := range resp.Entries {
			e, err := entryFromAPI(in)
			if err != nil {
				return nil, err
			}
			out = append(out, e)
		}
		token = resp.NextPageToken
		if token == "" {
			return out, nil
		}
		// SPIRE's token is the last row it returned, so it never repeats; a
		// repeat would make this loop forever.
		if seen[token] {
			return nil, fmt.Errorf("%w: page token %q repeated", ErrMalformedResponse, token)
		}
		seen[token] = true
	}
}

// CreateEntries implements EntryClient.
func (c *Client) CreateEntries(ctx context.Context, entries []Entry) ([]Status, error) {
	return writeEntries(entries, createBatchSize, "create", func(batch []*apitypes.Entry) ([]*entryv1.BatchCreateEntryResponse_Result, error) {
		resp, err := c.entry.BatchCreateEntry(ctx, &entryv1.BatchCreateEntryRequest{Entries: batch})
		return resp.GetResults(), err
	})
}

// UpdateEntries implements EntryClient. It sends no input mask, so every
// field is written: a field a human changed on an owned entry (Admin, say)
// is put back.
func (c *Client) UpdateEntries(ctx context.Context, entries []Entry) ([]Status, error) {
	return writeEntries(entries, updateBatchSize, "update", func(batch []*apitypes.Entry) ([]*entryv1.BatchUpdateEntryResponse_Result, error) {
		resp, err := c.entry.BatchUpdateEntry(ctx, &entryv1.BatchUpdateEntryRequest{Entries: batch})
		return resp.GetResults(), err
	})
}

// entryResult is what create and update answer per entry.
type entryResult interface {
	GetStatus() *apitypes.Status
	GetEntry() *apitypes.Entry
}

// writeEntries sends entries in batches of size through send (a create or
// an update) and returns one Status per entry, in order. verb names the
// operation in errors.
func writeEntries[R entryResult](entries []Entry, size int, verb string, send func([]*apitypes.Entry) ([]R, error)) ([]Status, error) {
	if err := checkWritable(entries); err != nil {
		return nil, err
	}
	out := make([]Status, 0, len(entries))
	err := inBatches(len(entries), size, func(start, end int) error {
		results, err := send(entriesToAPI(entries[start:end]))
		if err != nil {
			return fmt.Errorf("spireapi: failed to %s entries: %w", verb, err)
		}
		if len(results) != end-start {
			return fmt.Errorf("%w: %d results for %d %sd entries", ErrMalformedResponse, len(results), end-start, verb)
		}
		for _, r := range results {
			st, err := statusWithEntry(statusFromAPI(r.GetStatus()), r.GetEntry())
			if err != nil {
				return err
			}
			out = append(out, st)
		}
		return nil
	})
	return out, err
}

// DeleteEntries implements EntryClient.
func (c *Client) DeleteEntries(ctx context.Context, ids []string) ([]Status, error) {
	out := make([]Status, 0, len(ids))
	err := inBatches(len(ids), deleteBatchSize, func(start, end int) error {
		resp, err := c.entry.BatchDeleteEntry(ctx, &entryv1.BatchDeleteEntryRequest{
			Ids: ids[start:end],
		})
		if err != nil {
			return fmt.Errorf("spireapi: failed to delete entries: %w", err)
		}
		if len(resp.Results) != end-start {
			return fmt.Errorf("%w: %d results for %d deleted entries", ErrMalformedResponse, len(resp.Results), end-start)
		}
		for _, r := range resp.Results {
			out = append(out, statusFromAPI(r.Status))
		}
		return nil
	})
	return out, err
}

// statusWithEntry attaches the entry SPIRE returned with a status, if any.
func statusWithEntry(st Status, in *apitypes.Entry) (Status, error) {
	if in == nil {
		return st, nil
	}
	e, err := entryFromAPI(in)
	if err != nil {
		return Status{}, err
	}
	st.Entry = &e
	return st, nil
}

// checkWritable refuses entries whose TTLs SPIRE cannot store exactly (it
// keeps whole seconds in an int32): a silently rounded TTL would differ from
// the one asked for on every comparison.
func checkWritable(entries []Entry) error {
	for _, e := range entries {
		for _, ttl := range []struct {
			name string
			d    time.Duration
		}{{"X509-SVID", e.X509SVIDTTL}, {"JWT-SVID", e.JWTSVIDTTL}} {
			if ttl.d < 0 || ttl.d%time.Second != 0 || ttl.d/time.Second > math.MaxInt32 {
				return fmt.Errorf("spireapi: entry %q: %s TTL %s is not a whole number of seconds between 0 and %d", e.ID, ttl.name, ttl.d, math.MaxInt32)
			}
		}
	}
	return nil
}

// inBatches calls fn for consecutive [start, end) ranges of at most size items
// and stops at the first error.
func inBatches(n, size int, fn func(start, end int) error) error {
	for start := 0; start < n; start += size {
		end := min(start+size, n)
		if err := fn(start, end); err != nil {
			return err
		}
	}
	return nil
}
