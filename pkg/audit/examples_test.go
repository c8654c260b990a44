package audit_test

import (
	"bytes"
	"fmt"
	"strings"
	"time"

	"github.com/agentid/agentid/pkg/audit"
)

// Example records three events, exports them, tampers with the export and
// shows Verify naming the edited event.
func Example() {
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	var events []audit.Event
	var last audit.Anchor // the store keeps the head of its log
	for i, typ := range []audit.Type{audit.TypeDelegationCreated, audit.TypeTokenIssued, audit.TypeRevoked} {
		e := audit.Event{
			Time:         now.Add(time.Duration(i) * time.Minute),
			Type:         typ,
			Actor:        "local",
			DelegationID: "dlg_01jd3x0000000000000000000a",
			Detail:       map[string]string{"note": fmt.Sprint("step ", i+1)},
		}
		if err := e.Validate(); err != nil {
			fmt.Println(err)
			return
		}
		e.Seal(last.Sequence+1, last.Hash)
		last = e.Anchor()
		events = append(events, e)
	}

	var export bytes.Buffer
	if err := audit.WriteJSONL(&export, audit.FromSlice(events)); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("intact:", audit.Verify(audit.ReadJSONL(bytes.NewReader(export.Bytes()))))

	tampered := strings.Replace(export.String(), "step 2", "step 9", 1)
	fmt.Println("edited:", audit.Verify(audit.ReadJSONL(strings.NewReader(tampered))))

	// Cutting the last line off leaves a valid chain; only a head kept
	// elsewhere shows it.
	truncated := export.String()[:strings.LastIndex(strings.TrimSuffix(export.String(), "\n"), "\n")+1]
	fmt.Println("truncated:", audit.Verify(audit.ReadJSONL(strings.NewReader(truncated))))
	_, err := audit.VerifyWith(audit.VerifyConfig{Head: last}, audit.ReadJSONL(strings.NewReader(truncated)))
	fmt.Println("truncated, known head:", err)
	// Output:
	// intact: <nil>
	// edited: audit: chain broken at sequence 2: hash mismatch (event edited)
	// truncated: <nil>
	// truncated, known head: audit: chain broken at sequence 3: chain ends at sequence 2 before the known head 3 (tail truncated)
}

// ExampleVerifier verifies a log page by page, each page continuing from the
// anchor of the last event of the previous one.
func ExampleVerifier() {
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	var log []audit.Event
	var prev audit.Hash
	for i := range 5 {
		e := audit.Event{Time: now, Type: audit.TypeDenied, Actor: "local", Detail: map[string]string{"reason": "policy"}}
		e.Seal(uint64(i+1), prev)
		prev = e.Hash
		log = append(log, e)
	}

	var from audit.Anchor
	for _, page := range [][]audit.Event{log[:2], log[2:4], log[4:]} {
		v := audit.NewVerifier(audit.VerifyConfig{From: from})
		for i := range page {
			if err := v.Add(&page[i]); err != nil {
				fmt.Println(err)
				return
			}
		}
		if err := v.Close(); err != nil {
			fmt.Println(err)
			return
		}
		from = v.Last()
		fmt.Println("verified up to", from.Sequence)
	}
	// Output:
	// verified up to 2
	// verified up to 4
	// verified up to 5
}
