package aiagent

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
)

// Caps on what the binding check reads.
const (
	// maxCmdlineSize caps /proc/<pid>/cmdline. A longer command line cannot
	// be checked, so it does not match.
	maxCmdlineSize = 256 << 10
	// maxScriptSize caps a bound script read to be hashed.
	maxScriptSize = 16 << 20
)

// errNoMatch marks a process that does not run what its manifest binds:
// the manifest's selectors are withheld, which is not an attestation error.
var errNoMatch = errors.New("aiagent: process does not match the manifest's binding")

// checkBinding reports whether the process runs what b binds: its
// executable's digest (exeDigest, "" when not hashed) is bound, its
// environment loads no other code, and, for an interpreted agent, its
// command line runs a bound script whose bytes have the bound digest.
// A mismatch is an error wrapping errNoMatch that says why; other errors
// are failures to read the process.
func checkBinding(procDir string, root *os.Root, b *Binding, exeDigest string) error {
	if exeDigest == "" {
		return fmt.Errorf("%w: executable not hashed (larger than max_exe_size)", errNoMatch)
	}
	if !slices.Contains(b.Executables, exeDigest) {
		return fmt.Errorf("%w: executable sha256 %s is not one the manifest binds", errNoMatch, exeDigest)
	}
	interpreted := len(b.Scripts) > 0
	f, err := os.Open(procDir + "/environ")
	if err != nil {
		return err
	}
	defer f.Close()
	var loader string
	if err := scanEnvironNames(f, func(name string) bool {
		if loadsCode(name, interpreted) {
			loader = name
			return false
		}
		return true
	}); err != nil {
		return err
	}
	if loader != "" {
		return fmt.Errorf("%w: environment sets %s, which can make the bound code run other code", errNoMatch, loader)
	}
	if !interpreted {
		return nil
	}
	cmdline, err := readFileCapped(procDir+"/cmdline", maxCmdlineSize)
	if errors.Is(err, errTooLarge) {
		return fmt.Errorf("%w: command line longer than %d bytes", errNoMatch, maxCmdlineSize)
	}
	if err != nil {
		return err
	}
	script, ok := scriptArg(cmdline)
	if !ok {
		return fmt.Errorf("%w: command line names no script (want <interpreter> [-IBEsSu] /absolute/script ...)", errNoMatch)
	}
	i := slices.IndexFunc(b.Scripts, func(s Script) bool { return s.Path == script })
	if i < 0 {
		return fmt.Errorf("%w: command line runs %q, not a script the manifest binds", errNoMatch, script)
	}
	rel, err := rootRelative(script)
	if err != nil {
		return fmt.Errorf("%w: script %w", errNoMatch, err)
	}
	data, err := readInRoot(root, rel, maxScriptSize)
	if err != nil {
		return fmt.Errorf("%w: script %s unreadable: %w", errNoMatch, script, err)
	}
	sum := sha256.Sum256(data)
	if got := hex.EncodeToString(sum[:]); got != b.Scripts[i].SHA256 {
		return fmt.Errorf("%w: script %s has sha256 %s, not the bound one", errNoMatch, script, got)
	}
	return nil
}

// scriptArg returns the script an interpreter's command line runs: the
// first argument after the interpreter, or the second when the first is a
// cluster of Python's argument-less flags (-I, -B, -E, -s, -S, -u; a
// shebang line "#!/usr/bin/python3 -I" gives that form). Anything else
// (other options, -c, -m, a relative path) names no script: an option that
// takes an argument would let "python -W /app/agent.py evil.py" pass for
// the bound script.
func scriptArg(cmdline []byte) (string, bool) {
	args := strings.Split(strings.TrimSuffix(string(cmdline), "\x00"), "\x00")
	if len(args) < 2 {
		return "", false
	}
	i := 1
	if flags, ok := strings.CutPrefix(args[1], "-"); ok && flags != "" && strings.Trim(flags, "IBEsSu") == "" {
		i = 2
	}
	if i >= len(args) || !strings.HasPrefix(args[i], "/") {
		return "", false
	}
	return args[i], true
}

// loadsCode reports whether an environment variable can make a bound
// program run code the binding does not cover. Every process: the dynamic
// loader's LD_* (LD_PRELOAD, LD_AUDIT, LD_LIBRARY_PATH, ...; a static Go
// binary ignores them, but the plugin does not tell binaries apart). An
// interpreted agent also: the interpreters' families (PYTHON*, NODE_*,
// PERL*, RUBY*, GEM_*, BUNDLE_*, the JVM's option variables, CLASSPATH,
// BASH_ENV and ENV), except the few that only change output or caching.
func loadsCode(name string, interpreted bool) bool {
	if strings.HasPrefix(name, "LD_") {
		return true
	}
	if !interpreted {
		return false
	}
	switch name {
	case "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE", "PYTHONIOENCODING", "PYTHONUTF8", "NODE_ENV":
		return false
	case "CLASSPATH", "JAVA_TOOL_OPTIONS", "_JAVA_OPTIONS", "JDK_JAVA_OPTIONS", "BASH_ENV", "ENV":
		return true
	}
	for _, prefix := range []string{"PYTHON", "NODE_", "PERL", "RUBY", "GEM_", "BUNDLE_"} {
		if strings.HasPrefix(name, prefix) {
			return true
		}
	}
	return false
}

// scanEnvironNames calls fn with the name of each entry of a NUL-separated
// environment (/proc/<pid>/environ) until fn returns false. An entry longer
// than the buffer is named by its first part.
func scanEnvironNames(r io.Reader, fn func(name string) bool) error {
	br := bufio.NewReaderSize(r, 4096)
	for {
		entry, err := br.ReadSlice(0)
		long := errors.Is(err, bufio.ErrBufferFull)
		if err != nil && !long && err != io.EOF {
			return err
		}
		entry = bytes.TrimSuffix(entry, []byte{0})
		if len(entry) > 0 {
			name, _, _ := bytes.Cut(entry, []byte("="))
			if !fn(string(name)) {
				return nil
			}
		}
		for errors.Is(err, bufio.ErrBufferFull) {
			_, err = br.ReadSlice(0)
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}
