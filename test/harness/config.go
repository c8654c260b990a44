package harness

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// ExternalPlugin is a SPIRE plugin run as its own program (plugin_cmd), the
// way the project's composer and attestor are loaded.
type ExternalPlugin struct {
	// Name is the plugin's section name in the SPIRE config. For a
	// WorkloadAttestor it is also the selector type ("aiagent" gives
	// "aiagent:name:..."). Letters, digits, '_' and '-'.
	Name string
	// Cmd is the path of the plugin binary. The harness computes its
	// sha256 into plugin_checksum, so SPIRE refuses a binary that changed
	// between the harness reading it and SPIRE starting it.
	Cmd string
	// Args are passed as plugin_args.
	Args []string
	// Data is the body of the plugin_data block, in HCL, without the
	// braces: `socket_path = "/tmp/aid1/agentid.sock"`. Empty gives an
	// empty block.
	Data string
}

var pluginName = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// validate checks the plugin before it reaches SPIRE, whose own error for a
// bad path comes only from the server log.
func (p ExternalPlugin) validate() error {
	if !pluginName.MatchString(p.Name) {
		return fmt.Errorf("harness: plugin name %q: want letters, digits, '_' or '-'", p.Name)
	}
	if p.Cmd == "" {
		return fmt.Errorf("harness: plugin %s: cmd is empty", p.Name)
	}
	fi, err := os.Stat(p.Cmd)
	if err != nil {
		return fmt.Errorf("harness: plugin %s: %w", p.Name, err)
	}
	if fi.IsDir() || fi.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("harness: plugin %s: %s is not an executable file", p.Name, p.Cmd)
	}
	return nil
}

// hcl renders the plugin's section for the plugins block.
func (p ExternalPlugin) hcl(kind string) (string, error) {
	if err := p.validate(); err != nil {
		return "", err
	}
	sum, err := fileSHA256(p.Cmd)
	if err != nil {
		return "", fmt.Errorf("harness: plugin %s: %w", p.Name, err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "  %s %s {\n", kind, hclString(p.Name))
	fmt.Fprintf(&b, "    plugin_cmd = %s\n", hclString(p.Cmd))
	if len(p.Args) > 0 {
		fmt.Fprintf(&b, "    plugin_args = %s\n", hclList(p.Args))
	}
	fmt.Fprintf(&b, "    plugin_checksum = %s\n", hclString(sum))
	fmt.Fprintf(&b, "    plugin_data {\n%s\n    }\n", indent(p.Data, "      "))
	b.WriteString("  }\n")
	return b.String(), nil
}

// fileSHA256 is the hex sha256 of a file, what SPIRE's plugin_checksum
// holds.
func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// hclString quotes s for HCL: Go's quoting escapes '"', '\' and control
// characters the way HCL reads them. HCL 1 reads "${" inside a string as
// the start of an interpolation, and has no escape for it, so the '$' is
// written as a unicode escape (found by FuzzHCLString).
func hclString(s string) string {
	return strings.ReplaceAll(strconv.Quote(s), "${", `\u0024{`)
}

func hclList(items []string) string {
	q := make([]string, len(items))
	for i, s := range items {
		q[i] = hclString(s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

func indent(s, prefix string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return ""
	}
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		if strings.TrimSpace(l) != "" {
			lines[i] = prefix + l
		}
	}
	return strings.Join(lines, "\n")
}

// hclDuration renders d the way SPIRE's duration settings parse it.
func hclDuration(d time.Duration) string { return hclString(d.String()) }
