package composer

import (
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/agentid/agentid/pkg/claims"
	"github.com/agentid/agentid/pkg/plugin/internal/hclkeys"
	"github.com/hashicorp/hcl"
	"github.com/hashicorp/hcl/hcl/ast"
)

// Configuration defaults and bounds. The README's configuration table lists
// them.
const (
	// DefaultMarkerPrefix is the marker audience prefix when marker_prefix is
	// not set; it equals claims.MarkerPrefix, which agents and pkg/agentclient
	// use.
	DefaultMarkerPrefix = claims.MarkerPrefix
	// MaxMarkerPrefixLength bounds marker_prefix in bytes.
	MaxMarkerPrefixLength = 256
	// DefaultMaxStaleness is max_staleness when not set: three of the
	// server's default 10 s heartbeats may be lost before tokens fail closed.
	DefaultMaxStaleness = 30 * time.Second
	// MinMaxStaleness and MaxMaxStaleness bound max_staleness. The upper
	// bound caps how long a revocation can go unnoticed while the stream is
	// down.
	MinMaxStaleness = time.Second
	MaxMaxStaleness = time.Hour
	// DefaultAuditQueueSize is audit_queue_size when not set.
	DefaultAuditQueueSize = 10000
	// MaxAuditQueueSize bounds audit_queue_size.
	MaxAuditQueueSize = 1000000
	// serverHeartbeat is agentid-server's default progress interval; a
	// max_staleness below twice of it earns a note from Validate.
	serverHeartbeat = 10 * time.Second
)

// hclConfig is the plugin_data block as written by the operator.
type hclConfig struct {
	// AgentIDSocketPath is agentid-server's local unix socket
	// (listen.local_socket in its configuration). Required.
	AgentIDSocketPath string `hcl:"agentid_socket_path"`
	// MarkerPrefix is the audience prefix that asks for a delegated token.
	MarkerPrefix string `hcl:"marker_prefix"`
	// MaxStaleness is a Go duration ("30s"): how long the replica may go
	// without hearing from agentid-server before delegated tokens fail.
	MaxStaleness string `hcl:"max_staleness"`
	// AuditQueueSize is how many issuance records may wait for
	// agentid-server before issuance fails.
	AuditQueueSize int `hcl:"audit_queue_size"`
}

// knownConfigKeys are the keys of hclConfig. hcl v1 silently ignores keys it
// does not know, so buildConfig checks the parsed tree itself.
var knownConfigKeys = []string{"agentid_socket_path", "marker_prefix", "max_staleness", "audit_queue_size"}

// config is the validated runtime configuration, never modified after
// buildConfig returns it.
type config struct {
	socketPath     string
	markerPrefix   string
	maxStaleness   time.Duration
	auditQueueSize int
}

// buildConfig is the one builder behind Configure and Validate: parse, reject
// unknown and repeated keys, decode, validate, fill defaults. The notes are
// for ValidateResponse; on error the last note is the error.
func buildConfig(text string) (*config, []string, error) {
	var notes []string
	fail := func(format string, args ...any) (*config, []string, error) {
		err := fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...)
		return nil, append(notes, err.Error()), err
	}

	file, err := hcl.Parse(text)
	if err != nil {
		return fail("failed to parse: %v", err)
	}
	if problem := checkConfigKeys(file); problem != "" {
		return fail("%s", problem)
	}
	var raw hclConfig
	if err := hcl.DecodeObject(&raw, file); err != nil {
		return fail("failed to decode: %v", err)
	}

	c := &config{
		socketPath:     raw.AgentIDSocketPath,
		markerPrefix:   raw.MarkerPrefix,
		maxStaleness:   DefaultMaxStaleness,
		auditQueueSize: raw.AuditQueueSize,
	}
	switch {
	case c.socketPath == "":
		return fail("agentid_socket_path is required")
	case !filepath.IsAbs(c.socketPath):
		return fail("agentid_socket_path %q is not absolute", c.socketPath)
	}

	if c.markerPrefix == "" {
		c.markerPrefix = DefaultMarkerPrefix
	}
	if problem := markerPrefixProblem(c.markerPrefix); problem != "" {
		return fail("marker_prefix %s", problem)
	}

	if raw.MaxStaleness != "" {
		if c.maxStaleness, err = time.ParseDuration(raw.MaxStaleness); err != nil {
			return fail("max_staleness: %v", err)
		}
	}
	if c.maxStaleness < MinMaxStaleness || c.maxStaleness > MaxMaxStaleness {
		return fail("max_staleness %s: want %s to %s", c.maxStaleness, MinMaxStaleness, MaxMaxStaleness)
	}
	if c.maxStaleness < 2*serverHeartbeat {
		notes = append(notes, fmt.Sprintf("max_staleness %s is below twice agentid-server's default heartbeat (%s): "+
			"delegated tokens will fail whenever one heartbeat is late", c.maxStaleness, serverHeartbeat))
	}

	switch {
	case c.auditQueueSize == 0:
		c.auditQueueSize = DefaultAuditQueueSize
	case c.auditQueueSize < 0 || c.auditQueueSize > MaxAuditQueueSize:
		return fail("audit_queue_size %d: want 1 to %d", c.auditQueueSize, MaxAuditQueueSize)
	}
	return c, notes, nil
}

// markerPrefixProblem describes what is wrong with a marker prefix, or
// returns "". A prefix must be distinctive: every audience starting with it
// is taken for a marker, so an empty prefix, or one that a real audience
// (a SPIFFE ID, an https URL) could start with, is refused.
func markerPrefixProblem(p string) string {
	if len(p) > MaxMarkerPrefixLength {
		return fmt.Sprintf("is %d bytes, at most %d", len(p), MaxMarkerPrefixLength)
	}
	for i := 0; i < len(p); i++ {
		if c := p[i]; c <= ' ' || c >= 0x7f {
			return fmt.Sprintf("holds a space, control or non-ASCII byte at %d", i)
		}
	}
	for _, reserved := range []string{"spiffe://", "https://", "http://"} {
		if strings.HasPrefix(reserved, p) || strings.HasPrefix(p, reserved) {
			return fmt.Sprintf("%q would match ordinary audiences (%s...)", p, reserved)
		}
	}
	return ""
}

// checkConfigKeys describes the top-level keys that hclConfig does not have
// and the keys given twice, naming them all; "" when there are none.
func checkConfigKeys(file *ast.File) string {
	unknown, repeated, ok := hclkeys.Check(file, knownConfigKeys)
	switch {
	case !ok:
		return "not an HCL object"
	case len(unknown) > 0:
		return "unknown keys: " + strings.Join(unknown, ", ")
	case len(repeated) > 0:
		return "keys given more than once: " + strings.Join(repeated, ", ")
	}
	return ""
}
