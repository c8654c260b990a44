package aiagent

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
)

// Manifest formats. A document with any other apiVersion yields
// ErrUnsupportedAPIVersion, so a later format can change meaning without an
// old attestor misreading it.
const (
	// APIVersionV1 is the first manifest format. It says what the agent is
	// but not which code it is, so a copy of a signed v1 manifest vouches for
	// any process that carries it: the plugin still reads it, and never gives
	// it the signer selector. It is also the signature file's format.
	APIVersionV1 = "agentid.dev/v1"
	// APIVersionV2 adds the binding: the executables (and, for interpreted
	// agents, the scripts) the manifest describes. Its signer selector is
	// given only to a process that runs what the binding names.
	APIVersionV2 = "agentid.dev/v2"
	// APIVersion is the format to write.
	APIVersion = APIVersionV2
)

// Limits on a v2 manifest's binding.
const (
	// MaxBoundExecutables is the most executables one manifest binds.
	MaxBoundExecutables = 16
	// MaxBoundScripts is the most scripts one manifest binds.
	MaxBoundScripts = 16
	// MaxScriptPathLength is the longest bound script path.
	MaxScriptPathLength = 1024
)

// ManifestEnv is the environment variable in which a process names its
// manifest (an absolute path inside its own root filesystem). The plugin reads
// it from /proc/<pid>/environ, that is, the environment the process was
// started with.
const ManifestEnv = "AGENTID_MANIFEST"

// Limits on manifest values. Every value becomes (part of) a SPIRE selector,
// so they are short, printable ASCII and free of whitespace.
const (
	// MaxNameLength is the longest agent name.
	MaxNameLength = 128
	// MaxVersionLength is the longest version string.
	MaxVersionLength = 64
	// MaxProviderLength is the longest model provider.
	MaxProviderLength = 64
	// MaxModelNameLength is the longest model name.
	MaxModelNameLength = 128
	// MaxToolLength is the longest tool name.
	MaxToolLength = 128
	// MaxTools is the largest number of tools one manifest may declare.
	MaxTools = 128
	// MaxOwnerLength is the longest owner.
	MaxOwnerLength = 256
)

// Manifest is what an agent declares about itself: what it is (name,
// version), what drives it (model) and what it can touch (tools), and who
// answers for it (owner). The JSON form is documented in the package README;
// ParseManifest is its only reader.
//
// A manifest is read from inside the workload's own filesystem, so on its own
// it is a claim the workload makes about itself. It becomes evidence only
// when a configured key signed its exact bytes (the signer selector).
type Manifest struct {
	// APIVersion is the format version, always APIVersion.
	APIVersion string `json:"apiVersion"`
	// Name is the agent's name, e.g. "gdpr-compliance": letters, digits,
	// '.', '_' and '-', starting with a letter or digit.
	Name string `json:"name"`
	// Version is the agent's release, e.g. "1.4.2" or "1.4.2+build.7".
	Version string `json:"version"`
	// Model is the model the agent runs on.
	Model Model `json:"model"`
	// Tools are the tools and MCP servers the agent may call, e.g.
	// "crm.read" or "mcp:github". Unique; ParseManifest returns them sorted,
	// and nil for none.
	Tools []string `json:"tools,omitempty"`
	// Owner is the person or team accountable for the agent's decisions,
	// e.g. "team-compliance@example.com". It is not a selector: it is for
	// people reading the manifest and the audit trail.
	Owner string `json:"owner"`
	// Binding is what runs: required in v2, absent (nil) in v1.
	Binding *Binding `json:"binding,omitempty"`
}

// Binding names the code a v2 manifest describes, so that its signature
// vouches for that code and not for whoever holds a copy of the file. A
// process matches when the SHA-256 of its executable (/proc/<pid>/exe) is
// one of Executables and, when Scripts is set, its command line runs one of
// Scripts with that file's SHA-256 (see the package README for the exact
// rule and what it does not prove).
type Binding struct {
	// Executables are lower-case hex SHA-256 digests of the executables
	// the agent runs as: its binary (one per architecture or build), or
	// for an interpreted agent the interpreter. At least one.
	Executables []string `json:"executables"`
	// Scripts are, for an interpreted agent, the entry scripts the
	// interpreter runs. Nil for a compiled agent.
	Scripts []Script `json:"scripts,omitempty"`
}

// Script is one bound entry script of an interpreted agent.
type Script struct {
	// Path is the script's absolute, clean path inside the process's root
	// filesystem, exactly as the command line names it.
	Path string `json:"path"`
	// SHA256 is the lower-case hex SHA-256 of the script's bytes.
	SHA256 string `json:"sha256"`
}

// Model names the model an agent runs on, as provider and model name.
type Model struct {
	// Provider is e.g. "anthropic", "openai" or "huggingface".
	Provider string `json:"provider"`
	// Name is the provider's model name, e.g. "claude-sonnet-4"; it may hold
	// '/' (e.g. "meta-llama/Llama-3.1-8B").
	Name string `json:"name"`
}

// ParseManifest parses and validates a manifest. It is strict, because the
// same bytes are hashed and signed: the document must be exactly one JSON
// object, field names are matched exactly (not case-insensitively, as
// encoding/json would), unknown and repeated fields are errors, and every
// value must be well formed. Errors wrap ErrInvalidManifest or
// ErrUnsupportedAPIVersion.
//
// ParseManifest does not cap the size; the plugin stops reading at the
// configured max_manifest_size before it gets here.
func ParseManifest(data []byte) (*Manifest, error) {
	// The version is checked before the field names, so that a document of a
	// later format is reported as such and not as a v1 document with
	// unknown fields.
	fields, err := decodeObject(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidManifest, err)
	}
	var m Manifest
	if err := decodeString(fields, "apiVersion", &m.APIVersion); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidManifest, err)
	}
	allowed := manifestFields
	switch m.APIVersion {
	case APIVersionV1:
	case APIVersionV2:
		allowed = manifestFieldsV2
	default:
		return nil, fmt.Errorf("%w: %q (want %q or %q)", ErrUnsupportedAPIVersion, m.APIVersion, APIVersionV2, APIVersionV1)
	}
	if err := checkFields(fields, allowed); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidManifest, err)
	}
	if m.APIVersion == APIVersionV2 {
		b, err := decodeBinding(fields)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidManifest, err)
		}
		m.Binding = b
	}
	for _, f := range []struct {
		key string
		dst *string
	}{{"name", &m.Name}, {"version", &m.Version}, {"owner", &m.Owner}} {
		if err := decodeString(fields, f.key, f.dst); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidManifest, err)
		}
	}
	if err := decodeModel(fields, &m.Model); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidManifest, err)
	}
	if raw, ok := fields["tools"]; ok {
		if err := decodeNonNull(raw, &m.Tools); err != nil {
			return nil, fmt.Errorf("%w: tools: %w", ErrInvalidManifest, err)
		}
	}
	if err := m.validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidManifest, err)
	}
	if len(m.Tools) == 0 {
		m.Tools = nil // "tools": [] and no tools are the same manifest
	}
	slices.Sort(m.Tools)
	return &m, nil
}

// validate checks every value against the charset and length rules; it
// reports the first field that breaks them.
func (m *Manifest) validate() error {
	switch {
	case !validToken(m.Name, MaxNameLength, nameChars):
		return fmt.Errorf("name %q: want 1-%d of [A-Za-z0-9._-] starting with a letter or digit", m.Name, MaxNameLength)
	case !validToken(m.Version, MaxVersionLength, versionChars):
		return fmt.Errorf("version %q: want 1-%d of [A-Za-z0-9._+-] starting with a letter or digit", m.Version, MaxVersionLength)
	case !validToken(m.Model.Provider, MaxProviderLength, nameChars):
		return fmt.Errorf("model.provider %q: want 1-%d of [A-Za-z0-9._-] starting with a letter or digit", m.Model.Provider, MaxProviderLength)
	case !validToken(m.Model.Name, MaxModelNameLength, pathChars):
		return fmt.Errorf("model.name %q: want 1-%d of [A-Za-z0-9._:/@+-] starting with a letter or digit", m.Model.Name, MaxModelNameLength)
	case !validOwner(m.Owner):
		return fmt.Errorf("owner %q: want 1-%d printable ASCII characters, not starting or ending with a space", m.Owner, MaxOwnerLength)
	case len(m.Tools) > MaxTools:
		return fmt.Errorf("tools: %d tools, at most %d", len(m.Tools), MaxTools)
	}
	seen := make(map[string]struct{}, len(m.Tools))
	for _, t := range m.Tools {
		if !validToken(t, MaxToolLength, pathChars) {
			return fmt.Errorf("tool %q: want 1-%d of [A-Za-z0-9._:/@+-] starting with a letter or digit", t, MaxToolLength)
		}
		if _, dup := seen[t]; dup {
			return fmt.Errorf("tool %q: listed twice", t)
		}
		seen[t] = struct{}{}
	}
	return nil
}

var (
	manifestFields   = []string{"apiVersion", "name", "version", "model", "tools", "owner"}
	manifestFieldsV2 = []string{"apiVersion", "name", "version", "model", "tools", "owner", "binding"}
	bindingFields    = []string{"executables", "scripts"}
	scriptFields     = []string{"path", "sha256"}
	modelFields      = []string{"provider", "name"}
	signatureFields  = []string{"apiVersion", "keyId", "signature"}
)

// Character sets beyond ASCII letters and digits.
const (
	nameChars    = "._-"
	versionChars = "._+-"
	pathChars    = "._:/@+-"
)

// validToken reports whether s is 1 to max bytes of ASCII letters, digits and
// the extra characters, starting with a letter or digit.
func validToken(s string, maxLen int, extra string) bool {
	if len(s) == 0 || len(s) > maxLen || !isAlnum(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !isAlnum(c) && !containsByte(extra, c) {
			return false
		}
	}
	return true
}

func validOwner(s string) bool {
	if len(s) == 0 || len(s) > MaxOwnerLength || s[0] == ' ' || s[len(s)-1] == ' ' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

func containsByte(s string, c byte) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			return true
		}
	}
	return false
}

func decodeModel(fields map[string]json.RawMessage, dst *Model) error {
	raw, ok := fields["model"]
	if !ok {
		return fmt.Errorf("model: missing")
	}
	model, err := decodeObject(raw)
	if err == nil {
		err = checkFields(model, modelFields)
	}
	if err != nil {
		return fmt.Errorf("model: %w", err)
	}
	if err := decodeString(model, "provider", &dst.Provider); err != nil {
		return fmt.Errorf("model.%w", err)
	}
	if err := decodeString(model, "name", &dst.Name); err != nil {
		return fmt.Errorf("model.%w", err)
	}
	return nil
}

// decodeBinding decodes and checks a v2 manifest's binding, as strictly as
// the rest (exact member names, no unknown or repeated ones, no nulls).
func decodeBinding(fields map[string]json.RawMessage) (*Binding, error) {
	raw, ok := fields["binding"]
	if !ok {
		return nil, fmt.Errorf("binding: missing (an %s manifest must say what runs)", APIVersionV2)
	}
	obj, err := decodeObject(raw)
	if err == nil {
		err = checkFields(obj, bindingFields)
	}
	if err != nil {
		return nil, fmt.Errorf("binding: %w", err)
	}
	var b Binding
	rawExe, ok := obj["executables"]
	if !ok {
		return nil, fmt.Errorf("binding.executables: missing")
	}
	if err := decodeNonNull(rawExe, &b.Executables); err != nil {
		return nil, fmt.Errorf("binding.executables: %w", err)
	}
	if len(b.Executables) == 0 || len(b.Executables) > MaxBoundExecutables {
		return nil, fmt.Errorf("binding.executables: %d digests, want 1-%d", len(b.Executables), MaxBoundExecutables)
	}
	for i, d := range b.Executables {
		if !validDigest(d) {
			return nil, fmt.Errorf("binding.executables[%d] %q: want 64 lower-case hex digits (SHA-256)", i, d)
		}
		if slices.Contains(b.Executables[:i], d) {
			return nil, fmt.Errorf("binding.executables[%d] %q: listed twice", i, d)
		}
	}
	if rawScripts, ok := obj["scripts"]; ok {
		var scripts []json.RawMessage
		if err := decodeNonNull(rawScripts, &scripts); err != nil {
			return nil, fmt.Errorf("binding.scripts: %w", err)
		}
		if len(scripts) == 0 || len(scripts) > MaxBoundScripts {
			return nil, fmt.Errorf("binding.scripts: %d scripts, want 1-%d (or no scripts member)", len(scripts), MaxBoundScripts)
		}
		for i, rs := range scripts {
			key := fmt.Sprintf("binding.scripts[%d]", i)
			sobj, err := decodeObject(rs)
			if err == nil {
				err = checkFields(sobj, scriptFields)
			}
			if err != nil {
				return nil, fmt.Errorf("%s: %w", key, err)
			}
			var sc Script
			if err := decodeString(sobj, "path", &sc.Path); err != nil {
				return nil, fmt.Errorf("%s.%w", key, err)
			}
			if err := decodeString(sobj, "sha256", &sc.SHA256); err != nil {
				return nil, fmt.Errorf("%s.%w", key, err)
			}
			if _, err := rootRelative(sc.Path); err != nil || len(sc.Path) > MaxScriptPathLength || !printableASCII(sc.Path) {
				return nil, fmt.Errorf("%s.path %q: want an absolute, clean path of at most %d printable ASCII characters", key, sc.Path, MaxScriptPathLength)
			}
			if !validDigest(sc.SHA256) {
				return nil, fmt.Errorf("%s.sha256 %q: want 64 lower-case hex digits (SHA-256)", key, sc.SHA256)
			}
			if slices.ContainsFunc(b.Scripts, func(o Script) bool { return o.Path == sc.Path }) {
				return nil, fmt.Errorf("%s.path %q: listed twice", key, sc.Path)
			}
			b.Scripts = append(b.Scripts, sc)
		}
	}
	return &b, nil
}

// validDigest reports whether s is a lower-case hex SHA-256.
func validDigest(s string) bool {
	if len(s) != 2*sha256Size {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !(s[i] >= '0' && s[i] <= '9' || s[i] >= 'a' && s[i] <= 'f') {
			return false
		}
	}
	return true
}

const sha256Size = 32

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// decodeString decodes the required string field key.
func decodeString(fields map[string]json.RawMessage, key string, dst *string) error {
	raw, ok := fields[key]
	if !ok {
		return fmt.Errorf("%s: missing", key)
	}
	if err := decodeNonNull(raw, dst); err != nil {
		return fmt.Errorf("%s: %w", key, err)
	}
	return nil
}

// decodeNonNull unmarshals raw into dst, refusing null, which encoding/json
// would silently accept as "leave dst alone".
func decodeNonNull(raw json.RawMessage, dst any) error {
	if bytes.Equal(raw, []byte("null")) {
		return fmt.Errorf("null value")
	}
	return json.Unmarshal(raw, dst)
}

// decodeObject reads data as exactly one JSON object and returns its
// members. A member name may appear only once, and anything but whitespace
// after the object is an error. Together with checkFields this is the check
// that encoding/json lacks: it matches names case-insensitively and lets a
// repeated name silently win, so two readers of the same signed bytes could
// see different manifests.
func decodeObject(data []byte) (map[string]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("not JSON: %w", err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, fmt.Errorf("not a JSON object")
	}
	fields := make(map[string]json.RawMessage, 8)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, notJSON(err)
		}
		key, ok := tok.(string)
		if !ok {
			return nil, fmt.Errorf("not JSON: object key is %T", tok)
		}
		if _, dup := fields[key]; dup {
			return nil, fmt.Errorf("field %q repeated", key)
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, notJSON(err)
		}
		fields[key] = raw
	}
	if _, err := dec.Token(); err != nil { // the closing '}'
		return nil, notJSON(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("data after the JSON object")
	}
	return fields, nil
}

// notJSON wraps an error met inside the object, where the end of the input
// is always premature.
func notJSON(err error) error {
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("not JSON: %w", err)
}

// checkFields reports the first (in byte order) member name that is not in
// allowed; names are compared exactly.
func checkFields(fields map[string]json.RawMessage, allowed []string) error {
	var unknown []string
	for key := range fields {
		if !slices.Contains(allowed, key) {
			unknown = append(unknown, key)
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	slices.Sort(unknown)
	return fmt.Errorf("unknown field %q", unknown[0])
}
