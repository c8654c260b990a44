package spireapi

import (
	"fmt"
	"github.com/agentid/agentid/pkg/agent"
	"math"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	apitypes "github.com/spiffe/spire-api-sdk/proto/spire/api/types"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Entry is a SPIRE registration entry in the project's own types: SPIFFE IDs
// are parsed, TTLs are durations and expiry is a time. Only the fields SPIRE
// itself stores are here; what the entry means to agentid lives in the caller.
//
// The zero value of every optional field is SPIRE's default, so an Entry
// built with only ID, SPIFFEID, ParentID and Selectors asks for a plain
// workload entry: no admin rights, no downstream CA, no federation, no DNS
// names, server default TTLs, never expiring.
type Entry struct {
	// ID is the entry id. On create it may be chosen by the caller (SPIRE
	// accepts [A-Za-z0-9._-], at most 255 bytes); empty lets SPIRE pick a
	// UUID. Owning entries by an id prefix relies on choosing it.
	ID string
	// SPIFFEID is the identity the entry grants.
	SPIFFEID spiffeid.ID
	// ParentID is the node (agent) or entry that may obtain the identity.
	ParentID spiffeid.ID
	// Selectors must all match the workload for SPIRE to issue the identity.
	// SPIRE treats them as a set; the order is not significant.
	Selectors []Selector
	// X509SVIDTTL is the X509-SVID lifetime, whole seconds; zero means the
	// server default.
	X509SVIDTTL time.Duration
	// JWTSVIDTTL is the JWT-SVID lifetime, whole seconds; zero means the
	// server default.
	JWTSVIDTTL time.Duration
	// FederatesWith lists trust domains whose bundles the workload receives.
	FederatesWith []spiffeid.TrustDomain
	// Admin grants the workload admin rights on the SPIRE Server API. An
	// entry that should not have it must say false explicitly on update.
	Admin bool
	// Downstream lets the workload act as a downstream SPIRE server (CA).
	Downstream bool
	// DNSNames are added to the X509-SVID; the first becomes the subject CN.
	DNSNames []string
	// StoreSVID marks the SVID for storage by an SVIDStore plugin.
	StoreSVID bool
	// Hint tells a workload that receives several SVIDs which one to use.
	Hint string
	// ExpiresAt is when SPIRE prunes the entry; the zero time means never.
	ExpiresAt time.Time
	// RevisionNumber is set by SPIRE and incremented on each update; it is
	// ignored when sent.
	RevisionNumber int64
	// CreatedAt is set by SPIRE; it is ignored when sent.
	CreatedAt time.Time
}

// Selector is one attestation property a workload must present, such as
// aiagent:name:gdpr-compliance. It is the declared agent's type, so the
// reconciler hands an agent's selectors to SPIRE without converting them.
type Selector = agent.Selector

// Status is SPIRE's answer for one item of a batch call. The results of a
// batch are in the order of the items sent.
type Status struct {
	// Code is OK on success.
	Code codes.Code
	// Message is SPIRE's text for the code.
	Message string
	// Entry is the entry SPIRE returned with the status: after a successful
	// create or update, the stored entry; after a create answered
	// ALREADY_EXISTS because a similar entry (same SPIFFE ID, parent ID and
	// selector set) exists, that existing entry, whose ID may differ from
	// the one asked for. Nil when SPIRE returned no entry (failures, deletes,
	// and ALREADY_EXISTS for an id that is already taken).
	Entry *Entry
}

// Err returns nil for OK and a gRPC status error otherwise, so that
// status.Code(s.Err()) gives back the code.
func (s Status) Err() error {
	if s.Code == codes.OK {
		return nil
	}
	return status.Error(s.Code, s.Message)
}

// ttlSeconds is d in SPIRE's int32 seconds, saturated at math.MaxInt32
// (68 years, which SPIRE caps at its CA's lifetime anyway) rather than
// wrapped into a negative TTL.
func ttlSeconds(d time.Duration) int32 {
	s := d / time.Second
	if s > math.MaxInt32 {
		return math.MaxInt32
	}
	return int32(s) //nolint:gosec // s <= math.MaxInt32, checked above; negative TTLs are refused by the callers' validation
}

func entryToAPI(in Entry) *apitypes.Entry {
	out := &apitypes.Entry{
		Id:          in.ID,
		SpiffeId:    spiffeIDToAPI(in.SPIFFEID),
		ParentId:    spiffeIDToAPI(in.ParentID),
		Selectors:   selectorsToAPI(in.Selectors),
		X509SvidTtl: ttlSeconds(in.X509SVIDTTL),
		JwtSvidTtl:  ttlSeconds(in.JWTSVIDTTL),
		Admin:       in.Admin,
		Downstream:  in.Downstream,
		DnsNames:    in.DNSNames,
		StoreSvid:   in.StoreSVID,
		Hint:        in.Hint,
	}
	for _, td := range in.FederatesWith {
		out.FederatesWith = append(out.FederatesWith, td.Name())
	}
	if !in.ExpiresAt.IsZero() {
		out.ExpiresAt = in.ExpiresAt.Unix()
	}
	return out
}

func entriesToAPI(in []Entry) []*apitypes.Entry {
	out := make([]*apitypes.Entry, 0, len(in))
	for _, e := range in {
		out = append(out, entryToAPI(e))
	}
	return out
}

func entryFromAPI(in *apitypes.Entry) (Entry, error) {
	if in == nil {
		return Entry{}, fmt.Errorf("%w: entry is missing", ErrMalformedResponse)
	}
	spiffeID, err := spiffeIDFromAPI(in.SpiffeId)
	if err != nil {
		return Entry{}, fmt.Errorf("%w: entry %q: invalid SPIFFE ID: %w", ErrMalformedResponse, in.Id, err)
	}
	parentID, err := spiffeIDFromAPI(in.ParentId)
	if err != nil {
		return Entry{}, fmt.Errorf("%w: entry %q: invalid parent ID: %w", ErrMalformedResponse, in.Id, err)
	}
	out := Entry{
		ID:             in.Id,
		SPIFFEID:       spiffeID,
		ParentID:       parentID,
		X509SVIDTTL:    time.Duration(in.X509SvidTtl) * time.Second,
		JWTSVIDTTL:     time.Duration(in.JwtSvidTtl) * time.Second,
		Admin:          in.Admin,
		Downstream:     in.Downstream,
		DNSNames:       in.DnsNames,
		StoreSVID:      in.StoreSvid,
		Hint:           in.Hint,
		RevisionNumber: in.RevisionNumber,
	}
	for _, s := range in.Selectors {
		sel, err := selectorFromAPI(s)
		if err != nil {
			return Entry{}, fmt.Errorf("%w: entry %q: %w", ErrMalformedResponse, in.Id, err)
		}
		out.Selectors = append(out.Selectors, sel)
	}
	for _, name := range in.FederatesWith {
		td, err := spiffeid.TrustDomainFromString(name)
		if err != nil {
			return Entry{}, fmt.Errorf("%w: entry %q: invalid federated trust domain: %w", ErrMalformedResponse, in.Id, err)
		}
		out.FederatesWith = append(out.FederatesWith, td)
	}
	if in.ExpiresAt != 0 {
		out.ExpiresAt = time.Unix(in.ExpiresAt, 0).UTC()
	}
	if in.CreatedAt != 0 {
		out.CreatedAt = time.Unix(in.CreatedAt, 0).UTC()
	}
	return out, nil
}

func spiffeIDToAPI(id spiffeid.ID) *apitypes.SPIFFEID {
	return &apitypes.SPIFFEID{TrustDomain: id.TrustDomain().Name(), Path: id.Path()}
}

func spiffeIDFromAPI(in *apitypes.SPIFFEID) (spiffeid.ID, error) {
	if in == nil {
		return spiffeid.ID{}, fmt.Errorf("missing")
	}
	td, err := spiffeid.TrustDomainFromString(in.TrustDomain)
	if err != nil {
		return spiffeid.ID{}, err
	}
	return spiffeid.FromPath(td, in.Path)
}

func selectorsToAPI(in []Selector) []*apitypes.Selector {
	out := make([]*apitypes.Selector, 0, len(in))
	for _, s := range in {
		out = append(out, &apitypes.Selector{Type: s.Type, Value: s.Value})
	}
	return out
}

func selectorFromAPI(in *apitypes.Selector) (Selector, error) {
	switch {
	case in == nil:
		return Selector{}, fmt.Errorf("selector is missing")
	case in.Type == "":
		return Selector{}, fmt.Errorf("selector type is empty")
	case strings.Contains(in.Type, ":"):
		return Selector{}, fmt.Errorf("selector type %q contains ':'", in.Type)
	case in.Value == "":
		return Selector{}, fmt.Errorf("selector %q has an empty value", in.Type)
	}
	return Selector{Type: in.Type, Value: in.Value}, nil
}

func statusFromAPI(in *apitypes.Status) Status {
	if in == nil {
		return Status{Code: codes.Unknown, Message: "spireapi: SPIRE server returned no status"}
	}
	return Status{Code: codes.Code(in.Code), Message: in.Message} //nolint:gosec // SPIRE's status codes are gRPC codes (0-16); any other value prints as Code(n)
}
