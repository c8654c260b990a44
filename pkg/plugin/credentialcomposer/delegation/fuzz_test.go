package composer

import (
	"context"
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/agentid/agentid/pkg/claims"
	auditv1 "github.com/agentid/agentid/proto/agentid/audit/v1"
	delegationv1 "github.com/agentid/agentid/proto/agentid/delegation/v1"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
)

// FuzzFromProto feeds arbitrary delegation messages, as the watch stream
// could carry them, to the conversion: it must not panic, and whatever it
// accepts must satisfy the domain's invariants.
func FuzzFromProto(f *testing.F) {
	for _, d := range fixtures() {
		b, err := proto.Marshal(d)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{0x0a, 0x05, 'd', 'l', 'g', '_', 'x'})
	f.Fuzz(func(t *testing.T, b []byte) {
		var pb delegationv1.Delegation
		if proto.Unmarshal(b, &pb) != nil {
			return
		}
		d, err := fromProto(&pb)
		if err != nil {
			return
		}
		if err := d.Validate(); err != nil {
			t.Fatalf("accepted an invalid delegation: %v", err)
		}
		if d.Chain[len(d.Chain)-1] != d.Agent || d.ID.String() != pb.GetId() {
			t.Fatalf("accepted %+v from %v", d, &pb)
		}
	})
}

// FuzzCompose feeds arbitrary JWT claims (JSON, as SPIRE would pass them)
// to compose against a ready replica. It must not panic; a token it
// delegates must have exactly one marker removed, sub unchanged, exp no
// later than the delegation's expiry and in the future, and the claims of
// the delegation the marker named, owned by sub.
func FuzzCompose(f *testing.F) {
	f.Add(`{"sub":"` + analyst + `","aud":["` + crm + `","` + marker(childID) + `"],"exp":1795694700,"iat":1795694400}`)
	f.Add(`{"sub":"` + analyst + `","aud":"` + marker(childID) + `","exp":1795694700}`)
	f.Add(`{"sub":"` + orchestrator + `","aud":["a","` + marker(rootID) + `","` + marker(rootID) + `"],"exp":1e300}`)
	f.Add(`{"sub":"` + orchestrator + `","aud":["a","` + marker(rootID) + `"],"exp":-1}`)
	f.Add(`{"aud":[1,2],"exp":"x"}`)
	p := New(Options{Clock: func() time.Time { return t0 }})
	c, _, err := buildConfig(`agentid_socket_path = "/nonexistent"` + "\naudit_queue_size = 1000000")
	if err != nil {
		f.Fatal(err)
	}
	rt := &backend{replica: newReplica(), audit: &auditor{queue: make(chan *auditv1.TokenIssuance, 1<<20)}}
	snapshot := convertAll(f, fixtures()...)
	rt.replica.install(snapshot, 4, t0)
	st := &state{config: c, rt: rt}
	expiry := map[string]time.Time{}
	for _, d := range snapshot {
		expiry[d.ID.String()] = d.ExpiresAt
	}

	f.Fuzz(func(t *testing.T, text string) {
		s := new(structpb.Struct)
		if s.UnmarshalJSON([]byte(text)) != nil {
			return
		}
		before := proto.Clone(s).(*structpb.Struct)
		for len(rt.audit.queue) > 0 {
			<-rt.audit.queue
		}
		sub := s.GetFields()["sub"].GetStringValue()
		if err := p.compose(context.Background(), st, sub, s); err != nil {
			if !proto.Equal(before, s) {
				t.Fatalf("claims changed on error %v", err)
			}
			return
		}
		fields := s.GetFields()
		if fields["sub"].GetStringValue() != sub {
			t.Fatal("sub changed")
		}
		aud, ok := stringList(fields["aud"])
		oldAud, _ := stringList(before.GetFields()["aud"])
		if !ok || len(aud) != len(oldAud)-1 || len(aud) == 0 {
			t.Fatalf("aud %v from %v", aud, oldAud)
		}
		for _, a := range aud {
			if strings.HasPrefix(a, DefaultMarkerPrefix) {
				t.Fatalf("marker left in aud %v", aud)
			}
		}
		subID, err := spiffeid.FromString(sub)
		if err != nil {
			t.Fatal(err)
		}
		got, err := claims.Decode(s.AsMap(), subID)
		if err != nil {
			t.Fatalf("delegated claims do not decode: %v", err)
		}
		exp := fields["exp"].GetNumberValue()
		if exp != math.Floor(exp) || exp > float64(expiry[got.ID.String()].Unix()) || exp <= float64(t0.Unix()) {
			t.Fatalf("exp %v for expiry %v", exp, expiry[got.ID.String()])
		}
		if len(rt.audit.queue) != 1 {
			t.Fatal("no issuance record queued")
		}
		if _, err := json.Marshal(s.AsMap()); err != nil {
			t.Fatal(err)
		}
	})
}

// FuzzBuildConfig feeds arbitrary plugin_data to the configuration builder:
// no panic, and an accepted configuration is within its bounds.
func FuzzBuildConfig(f *testing.F) {
	f.Add(`agentid_socket_path = "/run/agentid/agentid.sock"`)
	f.Add("agentid_socket_path = \"/s\"\nmarker_prefix = \"urn:x:\"\nmax_staleness = \"1m\"\naudit_queue_size = 7")
	f.Add(`agentid_socket_path = "/s" agentid_socket_path = "/t"`)
	f.Add(`x { y = [1, {z = 2}] }`)
	f.Fuzz(func(t *testing.T, text string) {
		c, notes, err := buildConfig(text)
		if err != nil {
			if len(notes) == 0 || notes[len(notes)-1] != err.Error() {
				t.Fatalf("error %v not in notes %q", err, notes)
			}
			return
		}
		if c.socketPath == "" || c.markerPrefix == "" || c.maxStaleness < MinMaxStaleness || c.maxStaleness > MaxMaxStaleness ||
			c.auditQueueSize < 1 || c.auditQueueSize > MaxAuditQueueSize {
			t.Fatalf("accepted %+v", c)
		}
	})
}
