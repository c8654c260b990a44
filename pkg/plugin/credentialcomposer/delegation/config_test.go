package composer

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	configv1 "github.com/spiffe/spire-plugin-sdk/proto/spire/service/common/config/v1"
	"google.golang.org/grpc/codes"
)

const shortStalenessNote = "max_staleness 10s is below twice agentid-server's default heartbeat (10s): " +
	"delegated tokens will fail whenever one heartbeat is late"

// TestConfigure runs each configuration through Validate and Configure over
// gRPC: both must agree, with the exact error text.
func TestConfigure(t *testing.T) {
	h := newHarness(t, nil, "-")
	sock := `agentid_socket_path = "/run/agentid/agentid.sock"` + "\n"
	cases := []struct {
		name      string
		hcl       string
		wantErr   string // "" for valid
		wantNotes []string
		want      config
	}{
		{
			name: "socket only: defaults",
			hcl:  sock,
			want: config{socketPath: "/run/agentid/agentid.sock", markerPrefix: "urn:agentid:delegation:", maxStaleness: 30 * time.Second, auditQueueSize: 10000},
		},
		{
			name: "all keys",
			hcl:  sock + `marker_prefix = "urn:example:dlg:"` + "\nmax_staleness = \"1m30s\"\naudit_queue_size = 500",
			want: config{socketPath: "/run/agentid/agentid.sock", markerPrefix: "urn:example:dlg:", maxStaleness: 90 * time.Second, auditQueueSize: 500},
		},
		{
			name:      "short staleness: valid, with a note",
			hcl:       sock + `max_staleness = "10s"`,
			wantNotes: []string{shortStalenessNote},
			want:      config{socketPath: "/run/agentid/agentid.sock", markerPrefix: "urn:agentid:delegation:", maxStaleness: 10 * time.Second, auditQueueSize: 10000},
		},
		{name: "empty", hcl: "", wantErr: "composer: invalid configuration: agentid_socket_path is required"},
		{name: "relative socket", hcl: `agentid_socket_path = "agentid.sock"`,
			wantErr: `composer: invalid configuration: agentid_socket_path "agentid.sock" is not absolute`},
		{name: "unknown keys", hcl: sock + "socket_path = \"/x\"\nstaleness = \"1s\"",
			wantErr: "composer: invalid configuration: unknown keys: socket_path, staleness"},
		{name: "repeated key", hcl: sock + "audit_queue_size = 1\naudit_queue_size = 2",
			wantErr: "composer: invalid configuration: keys given more than once: audit_queue_size"},
		{name: "malformed HCL", hcl: sock + "marker_prefix = {",
			wantErr: "composer: invalid configuration: failed to parse: At 2:19: object expected closing RBRACE got: EOF"},
		{name: "wrong type", hcl: sock + `audit_queue_size = "big"`,
			wantErr: `composer: invalid configuration: failed to decode: strconv.ParseInt: parsing "big": invalid syntax`},
		{name: "bad duration", hcl: sock + `max_staleness = "30"`,
			wantErr: `composer: invalid configuration: max_staleness: time: missing unit in duration "30"`},
		{name: "staleness too short", hcl: sock + `max_staleness = "500ms"`,
			wantErr: "composer: invalid configuration: max_staleness 500ms: want 1s to 1h0m0s"},
		{name: "staleness too long", hcl: sock + `max_staleness = "2h"`,
			wantErr: "composer: invalid configuration: max_staleness 2h0m0s: want 1s to 1h0m0s"},
		{name: "negative queue", hcl: sock + `audit_queue_size = -1`,
			wantErr: "composer: invalid configuration: audit_queue_size -1: want 1 to 1000000"},
		{name: "huge queue", hcl: sock + `audit_queue_size = 1000001`,
			wantErr: "composer: invalid configuration: audit_queue_size 1000001: want 1 to 1000000"},
		{name: "prefix with a space", hcl: sock + `marker_prefix = "urn:a b:"`,
			wantErr: "composer: invalid configuration: marker_prefix holds a space, control or non-ASCII byte at 5"},
		{name: "prefix matching SPIFFE IDs", hcl: sock + `marker_prefix = "spiffe:"`,
			wantErr: `composer: invalid configuration: marker_prefix "spiffe:" would match ordinary audiences (spiffe://...)`},
		{name: "prefix inside https", hcl: sock + `marker_prefix = "https://example.org/dlg/"`,
			wantErr: `composer: invalid configuration: marker_prefix "https://example.org/dlg/" would match ordinary audiences (https://...)`},
		{name: "prefix too long", hcl: sock + `marker_prefix = "` + strings.Repeat("a", 257) + `"`,
			wantErr: "composer: invalid configuration: marker_prefix is 257 bytes, at most 256"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, notes, err := buildConfig(tc.hcl)
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("buildConfig: %v\nwant %s", err, tc.wantErr)
				}
			} else if err != nil || *got != tc.want || !slices.Equal(notes, tc.wantNotes) {
				t.Fatalf("buildConfig = %+v, %q, %v\nwant %+v, %q", got, notes, err, tc.want, tc.wantNotes)
			}

			resp, err := h.config.Validate(context.Background(), &configv1.ValidateRequest{HclConfiguration: tc.hcl})
			if err != nil {
				t.Fatal(err)
			}
			wantNotes := tc.wantNotes
			if tc.wantErr != "" {
				wantNotes = append(slices.Clone(tc.wantNotes), tc.wantErr)
			}
			if resp.GetValid() != (tc.wantErr == "") || !slices.Equal(resp.GetNotes(), wantNotes) {
				t.Fatalf("Validate = %v %q, want %q", resp.GetValid(), resp.GetNotes(), wantNotes)
			}

			_, err = h.config.Configure(context.Background(), &configv1.ConfigureRequest{HclConfiguration: tc.hcl})
			if tc.wantErr != "" {
				checkStatus(t, err, codes.InvalidArgument, tc.wantErr)
			} else if err != nil {
				t.Fatal(err)
			}
		})
	}
}
