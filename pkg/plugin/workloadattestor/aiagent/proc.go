package aiagent

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"sync"
	"syscall"
)

// maxStatSize caps /proc/<pid>/stat; the kernel writes well under 1 KiB.
const maxStatSize = 4096

// procStat is what the plugin needs from /proc/<pid>/stat.
type procStat struct {
	state     byte
	startTime uint64 // field 22, clock ticks after boot
}

// errProcessGone marks "the process exited or its pid now names another
// process": the plugin answers with no selectors, not an error.
var errProcessGone = errors.New("aiagent: process exited during attestation")

// isGone reports whether err from a /proc read means the process is gone.
func isGone(err error) bool {
	return errors.Is(err, errProcessGone) || errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ESRCH)
}

// readProcStat reads /proc/<pid>/stat. A zombie counts as gone: it has no
// memory or root left to attest.
func readProcStat(procDir string) (procStat, error) {
	data, err := readFileCapped(procDir+"/stat", maxStatSize)
	if err != nil {
		return procStat{}, err
	}
	st, err := parseProcStat(data)
	if err != nil {
		return procStat{}, err
	}
	if st.state == 'Z' || st.state == 'X' || st.state == 'x' {
		return procStat{}, errProcessGone
	}
	return st, nil
}

// parseProcStat extracts the state (field 3) and the start time (field 22)
// from the contents of /proc/<pid>/stat. Field 2, comm, is in parentheses and
// may itself hold spaces and ')', so the fields are counted from the last ')'.
func parseProcStat(data []byte) (procStat, error) {
	end := bytes.LastIndexByte(data, ')')
	if end < 0 || bytes.IndexByte(data, '(') < 0 {
		return procStat{}, fmt.Errorf("aiagent: malformed /proc stat: no comm field")
	}
	// After ") " come fields 3, 4, ...: field n is at index n-3.
	fields := bytes.Fields(data[end+1:])
	if len(fields) < 22-2 {
		return procStat{}, fmt.Errorf("aiagent: malformed /proc stat: %d fields after comm", len(fields))
	}
	if len(fields[0]) != 1 {
		return procStat{}, fmt.Errorf("aiagent: malformed /proc stat: state %q", fields[0])
	}
	start, err := strconv.ParseUint(string(fields[22-3]), 10, 64)
	if err != nil {
		return procStat{}, fmt.Errorf("aiagent: malformed /proc stat: start time: %w", err)
	}
	return procStat{state: fields[0][0], startTime: start}, nil
}

// lookupEnviron finds name in the NUL-separated environment r (the format of
// /proc/<pid>/environ). Entries longer than the reader's buffer are skipped:
// a path is at most PATH_MAX bytes, so such an entry cannot be a valid value.
func lookupEnviron(r io.Reader, name string) (string, bool, error) {
	br := bufio.NewReaderSize(r, 4096+len(name)+1)
	prefix := name + "="
	for {
		entry, err := br.ReadSlice(0)
		if errors.Is(err, bufio.ErrBufferFull) {
			for errors.Is(err, bufio.ErrBufferFull) {
				_, err = br.ReadSlice(0)
			}
			if err == io.EOF {
				return "", false, nil
			}
			if err != nil {
				return "", false, err
			}
			continue
		}
		if err != nil && err != io.EOF {
			return "", false, err
		}
		entry = bytes.TrimSuffix(entry, []byte{0})
		if v, ok := bytes.CutPrefix(entry, []byte(prefix)); ok {
			return string(v), true, nil
		}
		if err == io.EOF {
			return "", false, nil
		}
	}
}

// readFileCapped reads at most limit bytes of name; a longer file is an
// error wrapping errTooLarge.
func readFileCapped(name string, limit int64) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readCapped(f, limit)
}

var errTooLarge = errors.New("file too large")

func readCapped(f *os.File, limit int64) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%w: more than %d bytes", errTooLarge, limit)
	}
	return data, nil
}

// readInRoot reads the regular file rel (root-relative) inside root, up to
// limit bytes. The path is the workload's choice, so nothing is opened for
// reading before it is known to be a regular file of a real file system:
// openRegularInRoot (stat_linux.go) first takes an O_PATH handle, which
// opens no device, FIFO or FUSE file, checks it, and only then reopens that
// very inode read-only and non-blocking.
// The os.Root keeps every step, symlinks included, inside the process's root
// filesystem; absolute symlinks are refused.
func readInRoot(root *os.Root, rel string, limit int64) ([]byte, error) {
	f, err := openRegularInRoot(root, rel, limit)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readCapped(f, limit)
}

// digestCacheSize bounds the executable digest cache. Each entry is about
// 200 bytes; a node runs far fewer distinct agent binaries.
const digestCacheSize = 1024

// fileKey identifies one version of a file's contents without reading it.
// ctime is included beside mtime because a file's owner can set mtime back
// (touch -d) after changing the contents, but not ctime.
type fileKey struct {
	dev, ino     uint64
	size         int64
	mtime, ctime int64 // nanoseconds
}

// digestCache maps a fileKey to the SHA-256 of the file. Concurrent misses
// on the same file hash it once; the others wait for the result.
type digestCache struct {
	mu      sync.Mutex
	entries map[fileKey]*digestEntry
}

type digestEntry struct {
	done   chan struct{}
	digest string
	err    error
}

func newDigestCache() *digestCache {
	return &digestCache{entries: make(map[fileKey]*digestEntry)}
}

// digest returns the hex SHA-256 of the file name (e.g. /proc/<pid>/exe),
// from the cache when the file's key is unchanged. A file larger than limit
// bytes is not hashed (errTooLarge). A caller waiting for another's hash of
// the same file gives up when ctx ends, and so does the hashing itself
// (the half-done result is not cached).
func (c *digestCache) digest(ctx context.Context, name string, limit int64) (string, error) {
	fi, err := os.Stat(name)
	if err != nil {
		return "", err
	}
	if fi.Size() > limit {
		return "", fmt.Errorf("%w: %d bytes, more than %d", errTooLarge, fi.Size(), limit)
	}
	key, err := keyOf(fi)
	if err != nil {
		return "", err
	}

	c.mu.Lock()
	e, ok := c.entries[key]
	if ok {
		c.mu.Unlock()
		select {
		case <-e.done:
			return e.digest, e.err
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
	e = &digestEntry{done: make(chan struct{})}
	if len(c.entries) >= digestCacheSize {
		for k := range c.entries { // evict one arbitrary entry
			delete(c.entries, k)
			break
		}
	}
	c.entries[key] = e
	c.mu.Unlock()

	e.digest, e.err = hashFile(ctx, name, key)
	if e.err != nil {
		c.mu.Lock()
		if c.entries[key] == e {
			delete(c.entries, key)
		}
		c.mu.Unlock()
	}
	close(e.done)
	return e.digest, e.err
}

// errFileChanged is returned when a file changed while it was hashed.
var errFileChanged = errors.New("aiagent: executable changed while being hashed")

// hashFile hashes name, checking before and after that it is still the file
// version key names, so that a digest is never cached under another
// version's key.
func hashFile(ctx context.Context, name string, key fileKey) (string, error) {
	f, err := os.Open(name)
	if err != nil {
		return "", err
	}
	defer f.Close()
	if err := sameKey(f, key); err != nil {
		return "", err
	}
	h := sha256.New()
	if _, err := io.Copy(h, ctxReader{ctx, f}); err != nil {
		return "", err
	}
	if err := sameKey(f, key); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// ctxReader stops a copy when ctx ends; io.Copy reads in 32 KiB chunks, so
// the check is cheap beside the hashing.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (r ctxReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.r.Read(p)
}

func sameKey(f *os.File, want fileKey) error {
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	got, err := keyOf(fi)
	if err != nil {
		return err
	}
	if got != want {
		return errFileChanged
	}
	return nil
}
