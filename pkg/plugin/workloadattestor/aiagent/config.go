package aiagent

import (
	"crypto"
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/agentid/agentid/pkg/plugin/internal/hclkeys"
	"github.com/hashicorp/hcl"
	"github.com/hashicorp/hcl/hcl/ast"
)

// Configuration defaults and bounds.
const (
	// DefaultManifestPath is where the plugin looks, inside the process's
	// root filesystem, when the process does not set ManifestEnv and the
	// configuration names no default_manifest_path.
	DefaultManifestPath = "/etc/agentid/manifest.json"
	// DefaultMaxManifestSize is the manifest size cap when
	// max_manifest_size is not set: 64 KiB.
	DefaultMaxManifestSize = 64 << 10
	// MaxManifestSizeLimit is the largest max_manifest_size accepted: 1 MiB.
	// Attestation runs on every Workload API call, so the cap bounds the
	// work a workload can make the agent do.
	MaxManifestSizeLimit = 1 << 20
	// DefaultMaxExeSize is the executable size above which the plugin does
	// not hash it when max_exe_size is not set: 1 GiB.
	DefaultMaxExeSize = 1 << 30
	// maxKeyFileSize caps a public key PEM file.
	maxKeyFileSize = 64 << 10
)

// hclConfig is the plugin_data block as written by the operator. The README's
// configuration table documents each key.
type hclConfig struct {
	// DefaultManifestPath is the absolute, clean manifest path used for
	// processes that do not set ManifestEnv.
	DefaultManifestPath string `hcl:"default_manifest_path"`
	// MaxManifestSize is the manifest size cap in bytes; 0 means
	// DefaultMaxManifestSize.
	MaxManifestSize int64 `hcl:"max_manifest_size"`
	// MaxExeSize is the largest executable hashed, in bytes; 0 means
	// DefaultMaxExeSize.
	MaxExeSize int64 `hcl:"max_exe_size"`
	// SigningKeys maps a key id to the path of a PEM public key file on the
	// agent's host. A manifest signed by one of them gets signer:<key id>.
	SigningKeys map[string]string `hcl:"signing_keys"`
}

// knownConfigKeys are the keys of hclConfig. hcl v1 ignores keys it does not
// know (its ",unusedKeys" tag is never filled in v1.0.0), so the builder
// checks the parsed tree itself.
var knownConfigKeys = []string{"default_manifest_path", "max_exe_size", "max_manifest_size", "signing_keys"}

// config is the validated runtime configuration. It is never modified after
// buildConfig returns it; Configure swaps the whole value.
type config struct {
	// defaultManifest is root-relative (no leading '/').
	defaultManifest string
	maxManifestSize int64
	maxExeSize      int64
	keys            map[string]crypto.PublicKey
}

// buildConfig is the one builder behind Configure and Validate: decode,
// reject unknown and repeated keys, validate, fill defaults, load the keys.
// The notes are for ValidateResponse; on error the last note is the error.
func buildConfig(hclText string) (*config, []string, error) {
	var notes []string
	fail := func(err error) (*config, []string, error) {
		return nil, append(notes, err.Error()), err
	}

	file, err := hcl.Parse(hclText)
	if err != nil {
		return fail(fmt.Errorf("aiagent: failed to parse configuration: %w", err))
	}
	if err := checkConfigKeys(file); err != nil {
		return fail(err)
	}
	var raw hclConfig
	if err := hcl.DecodeObject(&raw, file); err != nil {
		return fail(fmt.Errorf("aiagent: failed to decode configuration: %w", err))
	}

	c := &config{
		maxManifestSize: raw.MaxManifestSize,
		maxExeSize:      raw.MaxExeSize,
		keys:            make(map[string]crypto.PublicKey, len(raw.SigningKeys)),
	}

	manifestPath := raw.DefaultManifestPath
	if manifestPath == "" {
		manifestPath = DefaultManifestPath
	}
	rel, err := rootRelative(manifestPath)
	if err != nil {
		return fail(fmt.Errorf("aiagent: default_manifest_path: %w", err))
	}
	c.defaultManifest = rel

	switch {
	case c.maxManifestSize == 0:
		c.maxManifestSize = DefaultMaxManifestSize
	case c.maxManifestSize < 0 || c.maxManifestSize > MaxManifestSizeLimit:
		return fail(fmt.Errorf("aiagent: max_manifest_size %d: want 1 to %d", c.maxManifestSize, MaxManifestSizeLimit))
	}

	switch {
	case c.maxExeSize == 0:
		c.maxExeSize = DefaultMaxExeSize
	case c.maxExeSize < 0:
		return fail(fmt.Errorf("aiagent: max_exe_size %d: want a positive size", c.maxExeSize))
	}

	ids := make([]string, 0, len(raw.SigningKeys))
	for id := range raw.SigningKeys {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		if !validToken(id, MaxKeyIDLength, nameChars) {
			return fail(fmt.Errorf("%w: key id %q: want 1-%d of [A-Za-z0-9._-] starting with a letter or digit", ErrInvalidKey, id, MaxKeyIDLength))
		}
		key, err := loadPublicKey(raw.SigningKeys[id])
		if err != nil {
			return fail(fmt.Errorf("%w %q: %w", ErrInvalidKey, id, err))
		}
		c.keys[id] = key
	}
	if len(c.keys) == 0 {
		notes = append(notes, "no signing_keys configured: manifests are unverified claims of the workload and no signer selector is produced")
	}
	return c, notes, nil
}

// checkConfigKeys rejects top-level keys that hclConfig does not have, and
// keys given twice, naming them all.
func checkConfigKeys(file *ast.File) error {
	unknown, repeated, ok := hclkeys.Check(file, knownConfigKeys)
	switch {
	case !ok:
		return fmt.Errorf("aiagent: configuration is not an HCL object")
	case len(unknown) > 0:
		return fmt.Errorf("aiagent: unknown configuration keys: %s", strings.Join(unknown, ", "))
	case len(repeated) > 0:
		return fmt.Errorf("aiagent: configuration keys given more than once: %s", strings.Join(repeated, ", "))
	}
	return nil
}

// rootRelative checks that p is an absolute, clean path below "/" and
// returns it without the leading slash, ready for an os.Root.
func rootRelative(p string) (string, error) {
	switch {
	case !strings.HasPrefix(p, "/"):
		return "", fmt.Errorf("%q is not absolute", p)
	case path.Clean(p) != p:
		return "", fmt.Errorf("%q is not clean (want %q)", p, path.Clean(p))
	case p == "/":
		return "", fmt.Errorf("%q names no file", p)
	case strings.ContainsRune(p, 0):
		return "", fmt.Errorf("%q holds a NUL byte", p)
	}
	return p[1:], nil
}

// loadPublicKey reads a PEM public key file from the agent's host.
func loadPublicKey(name string) (crypto.PublicKey, error) {
	data, err := readFileCapped(name, maxKeyFileSize)
	if err != nil {
		return nil, err
	}
	key, err := parsePublicKeyPEM(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return key, nil
}
