package spireapitest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	entryv1 "github.com/spiffe/spire-api-sdk/proto/spire/api/server/entry/v1"
	"github.com/spiffe/spire-api-sdk/proto/spire/api/types"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// SPIRE's limits, from pkg/server/api/entry.go and datastore/sqlstore.
const (
	hintMaximumLength = 1024
	entryIDMaxLength  = 255
)

type entryService struct {
	entryv1.UnimplementedEntryServer
	s *Server
}

func okStatus() *types.Status {
	return &types.Status{Code: int32(codes.OK), Message: codes.OK.String()}
}

func newStatus(code codes.Code, msg string) *types.Status {
	return &types.Status{Code: int32(code), Message: msg}
}

func (e *entryService) ListEntries(_ context.Context, req *entryv1.ListEntriesRequest) (*entryv1.ListEntriesResponse, error) {
	s := e.s
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls.ListEntries++
	if req.Filter != nil || req.OutputMask != nil {
		return nil, status.Error(codes.Unimplemented, "spireapitest: list filters and output masks are not implemented")
	}
	all := s.sortedLocked()
	resp := &entryv1.ListEntriesResponse{}
	if req.PageSize <= 0 {
		for _, se := range all {
			resp.Entries = append(resp.Entries, proto.Clone(se.entry).(*types.Entry))
		}
		return resp, nil
	}
	var after uint64
	if req.PageToken != "" {
		t, err := strconv.ParseUint(req.PageToken, 10, 32)
		if err != nil {
			return nil, status.Errorf(codes.Internal, "failed to list entries: could not parse token '%v'", req.PageToken)
		}
		after = t
	}
	var last uint64
	for _, se := range all {
		if se.eid <= after {
			continue
		}
		if len(resp.Entries) == int(req.PageSize) {
			break
		}
		resp.Entries = append(resp.Entries, proto.Clone(se.entry).(*types.Entry))
		last = se.eid
	}
	if len(resp.Entries) > 0 {
		resp.NextPageToken = strconv.FormatUint(last, 10)
	}
	return resp, nil
}

func (e *entryService) BatchCreateEntry(_ context.Context, req *entryv1.BatchCreateEntryRequest) (*entryv1.BatchCreateEntryResponse, error) {
	s := e.s
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls.BatchCreateEntry++
	resp := &entryv1.BatchCreateEntryResponse{}
	for _, in := range req.Entries {
		resp.Results = append(resp.Results, s.createLocked(in))
	}
	return resp, nil
}

func (e *entryService) BatchUpdateEntry(_ context.Context, req *entryv1.BatchUpdateEntryRequest) (*entryv1.BatchUpdateEntryResponse, error) {
	s := e.s
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls.BatchUpdateEntry++
	resp := &entryv1.BatchUpdateEntryResponse{}
	for _, in := range req.Entries {
		resp.Results = append(resp.Results, s.updateLocked(in, req.InputMask))
	}
	return resp, nil
}

func (e *entryService) BatchDeleteEntry(_ context.Context, req *entryv1.BatchDeleteEntryRequest) (*entryv1.BatchDeleteEntryResponse, error) {
	s := e.s
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls.BatchDeleteEntry++
	resp := &entryv1.BatchDeleteEntryResponse{}
	for _, id := range req.Ids {
		resp.Results = append(resp.Results, &entryv1.BatchDeleteEntryResponse_Result{
			Id:     id,
			Status: s.deleteLocked(id),
		})
	}
	return resp, nil
}

// createLocked follows SPIRE's createEntry and the SQL datastore's
// createOrReturnRegistrationEntry: convert, validate, look for a similar
// entry, insert.
func (s *Server) createLocked(in *types.Entry) *entryv1.BatchCreateEntryResponse_Result {
	e, err := s.convert(in, nil)
	if err != nil {
		return &entryv1.BatchCreateEntryResponse_Result{
			Status: newStatus(codes.InvalidArgument, "failed to convert entry: "+err.Error()),
		}
	}
	if f, ok := s.failureLocked(e.SpiffeId); ok {
		return &entryv1.BatchCreateEntryResponse_Result{Status: newStatus(f.code, f.message)}
	}
	if err := validateForCreate(e); err != nil {
		return &entryv1.BatchCreateEntryResponse_Result{
			Status: newStatus(codes.InvalidArgument, "failed to create entry: "+err.Error()),
		}
	}
	if similar := s.similarLocked(e); similar != nil {
		return &entryv1.BatchCreateEntryResponse_Result{
			Status: newStatus(codes.AlreadyExists, "similar entry already exists"),
			Entry:  proto.Clone(similar).(*types.Entry),
		}
	}
	if e.Id == "" {
		e.Id = newUUID()
	}
	if _, taken := s.entries[e.Id]; taken {
		return &entryv1.BatchCreateEntryResponse_Result{
			Status: newStatus(codes.AlreadyExists, "failed to create entry: datastore-sql: UNIQUE constraint failed: registered_entries.entry_id"),
		}
	}
	if hasDuplicateSelectors(e.Selectors) {
		return &entryv1.BatchCreateEntryResponse_Result{
			Status: newStatus(codes.AlreadyExists, "failed to create entry: datastore-sql: UNIQUE constraint failed: selectors.registered_entry_id, selectors.type, selectors.value"),
		}
	}
	e.RevisionNumber = 0
	e.CreatedAt = now().Unix()
	s.nextEID++
	s.entries[e.Id] = &storedEntry{eid: s.nextEID, entry: e}
	s.calls.Created++
	return &entryv1.BatchCreateEntryResponse_Result{
		Status: okStatus(),
		Entry:  proto.Clone(e).(*types.Entry),
	}
}

// updateLocked follows SPIRE's updateEntry and the datastore's
// updateRegistrationEntry: masked fields replace the stored ones and the
// revision number goes up by one.
func (s *Server) updateLocked(in *types.Entry, mask *types.EntryMask) *entryv1.BatchUpdateEntryResponse_Result {
	e, err := s.convert(in, mask)
	if err != nil {
		return &entryv1.BatchUpdateEntryResponse_Result{
			Status: newStatus(codes.InvalidArgument, "failed to convert entry: "+err.Error()),
		}
	}
	if f, ok := s.failureLocked(e.SpiffeId); ok && (mask == nil || mask.SpiffeId) {
		return &entryv1.BatchUpdateEntryResponse_Result{Status: newStatus(f.code, f.message)}
	}
	if err := validateTTLs(e, mask); err != nil {
		return &entryv1.BatchUpdateEntryResponse_Result{
			Status: newStatus(codes.InvalidArgument, "failed to update entry: "+err.Error()),
		}
	}
	se, ok := s.entries[e.Id]
	if !ok {
		// SPIRE drops the datastore's text for NOT_FOUND.
		return &entryv1.BatchUpdateEntryResponse_Result{Status: newStatus(codes.NotFound, "failed to update entry")}
	}
	out := proto.Clone(se.entry).(*types.Entry)
	all := mask == nil
	if all || mask.SpiffeId {
		out.SpiffeId = e.SpiffeId
	}
	if all || mask.ParentId {
		out.ParentId = e.ParentId
	}
	if all || mask.Selectors {
		if hasDuplicateSelectors(e.Selectors) {
			return &entryv1.BatchUpdateEntryResponse_Result{
				Status: newStatus(codes.AlreadyExists, "failed to update entry: datastore-sql: UNIQUE constraint failed: selectors.registered_entry_id, selectors.type, selectors.value"),
			}
		}
		out.Selectors = e.Selectors
	}
	if all || mask.StoreSvid {
		out.StoreSvid = e.StoreSvid
	}
	if out.StoreSvid && !sameSelectorType(out.Selectors) {
		return &entryv1.BatchUpdateEntryResponse_Result{
			Status: newStatus(codes.InvalidArgument, "failed to update entry: datastore-validation: invalid registration entry: selector types must be the same when store SVID is enabled"),
		}
	}
	if all || mask.DnsNames {
		out.DnsNames = e.DnsNames
	}
	if all || mask.X509SvidTtl {
		out.X509SvidTtl = e.X509SvidTtl
	}
	if all || mask.JwtSvidTtl {
		out.JwtSvidTtl = e.JwtSvidTtl
	}
	if all || mask.Admin {
		out.Admin = e.Admin
	}
	if all || mask.Downstream {
		out.Downstream = e.Downstream
	}
	if all || mask.ExpiresAt {
		out.ExpiresAt = e.ExpiresAt
	}
	if all || mask.Hint {
		out.Hint = e.Hint
	}
	if all || mask.FederatesWith {
		out.FederatesWith = e.FederatesWith
	}
	out.RevisionNumber++
	se.entry = out
	s.calls.Updated++
	return &entryv1.BatchUpdateEntryResponse_Result{
		Status: okStatus(),
		Entry:  proto.Clone(out).(*types.Entry),
	}
}

func (s *Server) deleteLocked(id string) *types.Status {
	if id == "" {
		return newStatus(codes.InvalidArgument, "missing entry ID")
	}
	se, ok := s.entries[id]
	if !ok {
		return newStatus(codes.NotFound, "entry not found")
	}
	if f, ok := s.failureLocked(se.entry.SpiffeId); ok {
		return newStatus(f.code, f.message)
	}
	delete(s.entries, id)
	s.calls.Deleted++
	return okStatus()
}

func (s *Server) failureLocked(id *types.SPIFFEID) (failure, bool) {
	if id == nil || len(s.failures) == 0 {
		return failure{}, false
	}
	td, err := spiffeid.TrustDomainFromString(id.TrustDomain)
	if err != nil {
		return failure{}, false
	}
	sid, err := spiffeid.FromPath(td, id.Path)
	if err != nil {
		return failure{}, false
	}
	f, ok := s.failures[sid]
	return f, ok
}

// similarLocked is the datastore's lookupSimilarEntry: same SPIFFE ID, same
// parent ID, exactly the same selector set. Of several (updates can make
// them), the first in list order.
func (s *Server) similarLocked(e *types.Entry) *types.Entry {
	var found *storedEntry
	for _, se := range s.entries {
		o := se.entry
		if sameID(o.SpiffeId, e.SpiffeId) && sameID(o.ParentId, e.ParentId) && sameSelectorSet(o.Selectors, e.Selectors) {
			if found == nil || se.eid < found.eid {
				found = se
			}
		}
	}
	if found == nil {
		return nil
	}
	return found.entry
}

func sameID(a, b *types.SPIFFEID) bool {
	return a.GetTrustDomain() == b.GetTrustDomain() && a.GetPath() == b.GetPath()
}

func (s *Server) sortedLocked() []*storedEntry {
	out := make([]*storedEntry, 0, len(s.entries))
	for _, se := range s.entries {
		out = append(out, se)
	}
	slices.SortFunc(out, func(a, b *storedEntry) int {
		switch {
		case a.eid < b.eid:
			return -1
		case a.eid > b.eid:
			return 1
		}
		return 0
	})
	return out
}

// convert is SPIRE's ProtoToRegistrationEntryWithMask followed by
// RegistrationEntryToProto: it validates the fields the mask selects and
// returns them normalised, the others zero.
func (s *Server) convert(in *types.Entry, mask *types.EntryMask) (*types.Entry, error) {
	if in == nil {
		return nil, errors.New("missing entry")
	}
	all := mask == nil
	out := &types.Entry{Id: in.Id}
	if all || mask.ParentId {
		id, err := s.memberID(in.ParentId, false)
		if err != nil {
			return nil, fmt.Errorf("invalid parent ID: %w", err)
		}
		out.ParentId = &types.SPIFFEID{TrustDomain: id.TrustDomain().Name(), Path: id.Path()}
	}
	if all || mask.SpiffeId {
		id, err := s.memberID(in.SpiffeId, true)
		if err != nil {
			return nil, fmt.Errorf("invalid spiffe ID: %w", err)
		}
		out.SpiffeId = &types.SPIFFEID{TrustDomain: id.TrustDomain().Name(), Path: id.Path()}
	}
	if all || mask.FederatesWith {
		for _, name := range in.FederatesWith {
			td, err := spiffeid.TrustDomainFromString(name)
			if err != nil {
				return nil, fmt.Errorf("invalid federated trust domain: %w", err)
			}
			out.FederatesWith = append(out.FederatesWith, td.Name())
		}
	}
	if all || mask.Selectors {
		if len(in.Selectors) == 0 {
			return nil, errors.New("selector list is empty")
		}
		for _, sel := range in.Selectors {
			switch {
			case sel.Type == "":
				return nil, errors.New("missing selector type")
			case strings.Contains(sel.Type, ":"):
				return nil, errors.New("selector type contains ':'")
			case sel.Value == "":
				return nil, errors.New("missing selector value")
			}
			out.Selectors = append(out.Selectors, &types.Selector{Type: sel.Type, Value: sel.Value})
		}
	}
	if all || mask.Hint {
		if len(in.Hint) > hintMaximumLength {
			return nil, fmt.Errorf("hint is too long, max length is %d characters", hintMaximumLength)
		}
		out.Hint = in.Hint
	}
	if all || mask.DnsNames {
		out.DnsNames = slices.Clone(in.DnsNames)
	}
	if all || mask.Admin {
		out.Admin = in.Admin
	}
	if all || mask.Downstream {
		out.Downstream = in.Downstream
	}
	if all || mask.ExpiresAt {
		out.ExpiresAt = in.ExpiresAt
	}
	if all || mask.StoreSvid {
		out.StoreSvid = in.StoreSvid
	}
	if all || mask.X509SvidTtl {
		out.X509SvidTtl = in.X509SvidTtl
	}
	if all || mask.JwtSvidTtl {
		out.JwtSvidTtl = in.JwtSvidTtl
	}
	return out, nil
}

// memberID is SPIRE's TrustDomainMemberIDFromProto, and with workload set
// TrustDomainWorkloadIDFromProto, which also refuses the /spire namespace.
func (s *Server) memberID(in *types.SPIFFEID, workload bool) (spiffeid.ID, error) {
	if in == nil {
		return spiffeid.ID{}, errors.New("request must specify SPIFFE ID")
	}
	td, err := spiffeid.TrustDomainFromString(in.TrustDomain)
	if err != nil {
		return spiffeid.ID{}, err
	}
	id, err := spiffeid.FromPath(td, in.Path)
	if err != nil {
		return spiffeid.ID{}, err
	}
	if !id.MemberOf(s.td) {
		return spiffeid.ID{}, fmt.Errorf("%q is not a member of trust domain %q", id, s.td)
	}
	if id.Path() == "" {
		if workload {
			return spiffeid.ID{}, fmt.Errorf("%q is not a workload in trust domain %q; path is empty", id, s.td)
		}
		return spiffeid.ID{}, fmt.Errorf("%q is not a member of trust domain %q; path is empty", id, s.td)
	}
	if workload && (id.Path() == "/spire" || strings.HasPrefix(id.Path(), "/spire/")) {
		return spiffeid.ID{}, fmt.Errorf("%q is not a workload in trust domain %q; path is in the reserved namespace", id, s.td)
	}
	return id, nil
}

// validateForCreate is the datastore's validateRegistrationEntry.
func validateForCreate(e *types.Entry) error {
	if e.StoreSvid && !sameSelectorType(e.Selectors) {
		return errors.New("datastore-validation: invalid registration entry: selector types must be the same when store SVID is enabled")
	}
	if len(e.Id) > entryIDMaxLength {
		return errors.New("datastore-validation: invalid registration entry: entry ID too long")
	}
	for _, r := range e.Id {
		if !validEntryIDChar(r) {
			return errors.New("datastore-validation: invalid registration entry: entry ID contains invalid characters")
		}
	}
	return validateTTLs(e, nil)
}

func validateTTLs(e *types.Entry, mask *types.EntryMask) error {
	if (mask == nil || mask.X509SvidTtl) && e.X509SvidTtl < 0 {
		return errors.New("datastore-validation: invalid registration entry: X509SvidTtl is not set")
	}
	if (mask == nil || mask.JwtSvidTtl) && e.JwtSvidTtl < 0 {
		return errors.New("datastore-validation: invalid registration entry: JwtSvidTtl is not set")
	}
	return nil
}

// validEntryIDChar is the datastore's validEntryIDChars: [-.0-9A-Z_a-z].
func validEntryIDChar(r rune) bool {
	switch {
	case r == '-' || r == '.' || r == '_':
		return true
	case r >= '0' && r <= '9', r >= 'A' && r <= 'Z', r >= 'a' && r <= 'z':
		return true
	}
	return false
}

func sameSelectorSet(a, b []*types.Selector) bool {
	set := make(map[[2]string]bool, len(a))
	for _, s := range a {
		set[[2]string{s.Type, s.Value}] = true
	}
	other := make(map[[2]string]bool, len(b))
	for _, s := range b {
		if !set[[2]string{s.Type, s.Value}] {
			return false
		}
		other[[2]string{s.Type, s.Value}] = true
	}
	return len(set) == len(other)
}

func hasDuplicateSelectors(sels []*types.Selector) bool {
	seen := make(map[[2]string]bool, len(sels))
	for _, s := range sels {
		k := [2]string{s.Type, s.Value}
		if seen[k] {
			return true
		}
		seen[k] = true
	}
	return false
}

func sameSelectorType(sels []*types.Selector) bool {
	for _, s := range sels {
		if s.Type != sels[0].Type {
			return false
		}
	}
	return true
}
