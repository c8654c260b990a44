package aiagent

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// statLine builds a /proc/<pid>/stat line with the given comm, state and
// start time (field 22); the other fields are small numbers.
func statLine(comm string, state byte, start uint64) string {
	fields := []string{"42", "(" + comm + ")", string(state)}
	for n := 4; n <= 52; n++ {
		if n == 22 {
			fields = append(fields, strconv.FormatUint(start, 10))
			continue
		}
		fields = append(fields, strconv.Itoa(n))
	}
	return strings.Join(fields, " ") + "\n"
}

func TestParseProcStat(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in      string
		want    procStat
		wantErr string
	}{
		{name: "plain", in: statLine("sleep", 'S', 12345), want: procStat{'S', 12345}},
		{name: "comm with spaces and parens", in: statLine("a) (b c) 1 2 3", 'R', 7), want: procStat{'R', 7}},
		{name: "comm ending in paren", in: statLine("x)", 'S', 99), want: procStat{'S', 99}},
		{name: "empty comm", in: statLine("", 'Z', 1), want: procStat{'Z', 1}},
		{name: "exactly 22 fields", in: "1 (c) S" + strings.Repeat(" 0", 18) + " 5", want: procStat{'S', 5}},
		{name: "no parens", in: "1 c S 2 3", wantErr: "aiagent: malformed /proc stat: no comm field"},
		{name: "short", in: "1 (c) S" + strings.Repeat(" 0", 18), wantErr: "aiagent: malformed /proc stat: 19 fields after comm"},
		{name: "bad state", in: "1 (c) SS" + strings.Repeat(" 0", 19), wantErr: `aiagent: malformed /proc stat: state "SS"`},
		{name: "bad start", in: "1 (c) S" + strings.Repeat(" 0", 18) + " -5", wantErr: `aiagent: malformed /proc stat: start time: strconv.ParseUint: parsing "-5": invalid syntax`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseProcStat([]byte(tc.in))
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Errorf("error = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("parseProcStat = %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

// TestReadProcStatSelf reads the test process's own stat: the start time is
// stable across reads.
func TestReadProcStatSelf(t *testing.T) {
	dir := "/proc/" + strconv.Itoa(os.Getpid())
	a, err := readProcStat(dir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := readProcStat(dir)
	// Only the start time: the state letter (R, S) changes between reads.
	if err != nil || a.startTime != b.startTime || a.startTime == 0 {
		t.Errorf("reads %+v and %+v (%v)", a, b, err)
	}
}

// FuzzParseProcStat checks that the stat parser never panics and that it
// finds field 22 whatever the comm holds.
func FuzzParseProcStat(f *testing.F) {
	f.Add([]byte(statLine("sleep", 'S', 1)), "sleep", uint64(1))
	f.Add([]byte("1 (c) S"), "a) (b", uint64(1<<63))
	f.Add([]byte(""), ") ) )", uint64(0))
	f.Fuzz(func(t *testing.T, raw []byte, comm string, start uint64) {
		_, _ = parseProcStat(raw)
		// The kernel caps comm at 15 bytes without newline or NUL; any
		// bytes at all must still parse.
		line := statLine(comm, 'S', start)
		got, err := parseProcStat([]byte(line))
		if err != nil || got.startTime != start || got.state != 'S' {
			t.Fatalf("parseProcStat(%q) = %+v, %v", line, got, err)
		}
	})
}

func TestLookupEnviron(t *testing.T) {
	long := strings.Repeat("x", 5000)
	for _, tc := range []struct {
		name      string
		in        string
		want      string
		wantFound bool
	}{
		{"empty", "", "", false},
		{"only", "AGENTID_MANIFEST=/m.json\x00", "/m.json", true},
		{"no trailing NUL", "A=1\x00AGENTID_MANIFEST=/m.json", "/m.json", true},
		{"first wins", "AGENTID_MANIFEST=/a\x00AGENTID_MANIFEST=/b\x00", "/a", true},
		{"prefix of another name", "AGENTID_MANIFEST_X=/a\x00", "", false},
		{"empty value", "AGENTID_MANIFEST=\x00", "", true},
		{"after a long entry", "BIG=" + long + "\x00AGENTID_MANIFEST=/m\x00", "/m", true},
		{"too long to be a path is skipped", "AGENTID_MANIFEST=" + long + "\x00", "", false},
		{"long entry at the end", "BIG=" + long, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, found, err := lookupEnviron(strings.NewReader(tc.in), ManifestEnv)
			if err != nil || got != tc.want || found != tc.wantFound {
				t.Errorf("lookupEnviron = %q, %v, %v; want %q, %v", got, found, err, tc.want, tc.wantFound)
			}
		})
	}
}

// FuzzLookupEnviron compares lookupEnviron with a plain reference: the first
// NUL-separated entry with the prefix, among entries that fit the buffer.
func FuzzLookupEnviron(f *testing.F) {
	f.Add([]byte("A=1\x00AGENTID_MANIFEST=/m\x00"))
	f.Add([]byte("AGENTID_MANIFEST"))
	f.Add([]byte("\x00\x00AGENTID_MANIFEST=\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, found, err := lookupEnviron(bytes.NewReader(data), ManifestEnv)
		if err != nil {
			t.Fatal(err)
		}
		bufSize := 4096 + len(ManifestEnv) + 1
		var want string
		var wantFound bool
		for _, entry := range bytes.Split(data, []byte{0}) {
			if len(entry)+1 > bufSize {
				continue
			}
			if v, ok := bytes.CutPrefix(entry, []byte(ManifestEnv+"=")); ok {
				want, wantFound = string(v), true
				break
			}
		}
		if got != want || found != wantFound {
			t.Fatalf("lookupEnviron = %q, %v; reference %q, %v", got, found, want, wantFound)
		}
	})
}

func TestDigestCache(t *testing.T) {
	dir := t.TempDir()
	p := writeFile(t, dir, "bin", []byte("version one"))
	c := newDigestCache()
	hexSum := func(s string) string { sum := sha256.Sum256([]byte(s)); return hex.EncodeToString(sum[:]) }

	if got := must(c.digest(context.Background(), p, 1<<20)); got != hexSum("version one") {
		t.Errorf("digest = %s", got)
	}
	// Rewritten in place (same inode): the size (and the times) change, so
	// the key changes and the file is hashed again. The length differs so
	// that the test does not depend on the file system's time granularity.
	writeFile(t, dir, "bin", []byte("version 2.0"+"!"))
	if got := must(c.digest(context.Background(), p, 1<<20)); got != hexSum("version 2.0!") {
		t.Errorf("digest after rewrite = %s", got)
	}
	if len(c.entries) != 2 {
		t.Errorf("cache has %d entries, want 2", len(c.entries))
	}
	if _, err := c.digest(context.Background(), dir+"/missing", 1<<20); !os.IsNotExist(err) {
		t.Errorf("digest of missing file: %v", err)
	}
	if _, err := c.digest(context.Background(), p, 11); err == nil || err.Error() != "file too large: 12 bytes, more than 11" {
		t.Errorf("digest over the limit: %v", err)
	}
}

func TestDigestCacheBounded(t *testing.T) {
	dir := t.TempDir()
	c := newDigestCache()
	for i := range digestCacheSize + 10 {
		p := writeFile(t, dir, fmt.Sprint(i), []byte{byte(i)})
		if _, err := c.digest(context.Background(), p, 1<<20); err != nil {
			t.Fatal(err)
		}
	}
	if len(c.entries) != digestCacheSize {
		t.Errorf("cache has %d entries, want %d", len(c.entries), digestCacheSize)
	}
}

// TestDigestCacheConcurrent runs concurrent misses on one file (run with
// -race): all get the same digest and one entry is kept.
func TestDigestCacheConcurrent(t *testing.T) {
	p := writeFile(t, t.TempDir(), "bin", bytes.Repeat([]byte("x"), 1<<20))
	c := newDigestCache()
	var wg sync.WaitGroup
	results := make([]string, 8)
	for i := range results {
		wg.Go(func() {
			d, err := c.digest(context.Background(), p, 1<<20)
			if err != nil {
				t.Error(err)
			}
			results[i] = d
		})
	}
	wg.Wait()
	for _, d := range results {
		if d != results[0] || d == "" {
			t.Fatalf("digests differ: %q", results)
		}
	}
	if len(c.entries) != 1 {
		t.Errorf("cache has %d entries, want 1", len(c.entries))
	}
}

// TestDigestCacheWaiterHonoursContext puts a hash in flight that never
// finishes: a second caller for the same file must return when its context
// ends instead of waiting for ever.
func TestDigestCacheWaiterHonoursContext(t *testing.T) {
	p := writeFile(t, t.TempDir(), "bin", []byte("exe"))
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	key, err := keyOf(fi)
	if err != nil {
		t.Fatal(err)
	}
	c := newDigestCache()
	c.entries[key] = &digestEntry{done: make(chan struct{})} // never closed
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.digest(ctx, p, 1<<20); !errors.Is(err, context.Canceled) {
		t.Errorf("digest with a cancelled context = %v, want %v", err, context.Canceled)
	}
}

// TestHashFileHonoursContext checks that hashing stops when ctx ends.
func TestHashFileHonoursContext(t *testing.T) {
	p := writeFile(t, t.TempDir(), "bin", []byte("exe"))
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	key, err := keyOf(fi)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := hashFile(ctx, p, key); !errors.Is(err, context.Canceled) {
		t.Errorf("hashFile with a cancelled context = %v, want %v", err, context.Canceled)
	}
}
