package aiagent

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// keyOf builds the cache key of a file from its stat data.
func keyOf(fi fs.FileInfo) (fileKey, error) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fileKey{}, fmt.Errorf("aiagent: no stat data for %s", fi.Name())
	}
	return fileKey{
		dev:   uint64(st.Dev),
		ino:   st.Ino,
		size:  st.Size,
		mtime: st.Mtim.Nano(),
		ctime: st.Ctim.Nano(),
	}, nil
}

// Magic numbers (statfs f_type) of kernel pseudo file systems, from
// linux/magic.h.
var pseudoFS = map[uint32]string{
	0x9fa0:     "proc",
	0x62656572: "sysfs",
	0x64626720: "debugfs",
	0x74726163: "tracefs",
	0x73636673: "securityfs",
	0x27e0eb:   "cgroup",
	0x63677270: "cgroup2",
	0xcafe4a11: "bpf",
	0x62656570: "configfs",
	0xde5e81e4: "efivarfs",
	// FUSE is not a kernel pseudo file system, but its files are served
	// by a user-space process that can make open and read block forever.
	0x65735546: "fuse",
}

// checkNotPseudoFS refuses files of kernel pseudo file systems. Their
// "regular files" are views of kernel and process state, and the plugin,
// which runs with spire-agent's privileges, must not be talked into reading
// them (e.g. AGENTID_MANIFEST=/proc/self/environ) on a workload's behalf.
// The check works on an O_PATH handle, so it runs before anything is opened
// for reading.
func checkNotPseudoFS(f *os.File) error {
	var st syscall.Statfs_t
	if err := syscall.Fstatfs(int(f.Fd()), &st); err != nil {
		return err
	}
	if name, ok := pseudoFS[uint32(st.Type)]; ok { //nolint:gosec // statfs f_type magic numbers are 32-bit values (linux/magic.h)
		return fmt.Errorf("%s is on %s, not a real file system", f.Name(), name)
	}
	return nil
}

// oPath is O_PATH (asm-generic/fcntl.h), the same on every Linux
// architecture Go supports; package syscall does not define it.
const oPath = 0x200000

// maxSymlinks bounds the symbolic links followed in the last component of a
// manifest path; the kernel's own limit is 40.
const maxSymlinks = 40

// errTooManySymlinks is returned when a manifest path loops.
var errTooManySymlinks = errors.New("aiagent: too many levels of symbolic links")

// openRegularInRoot opens rel inside root for reading, after checking that
// it is a regular file of at most limit bytes on a real file system.
//
// The first open is O_PATH: it reaches the inode without opening it, so a
// device node (/dev/watchdog arms on open), a FIFO or a FUSE file has no
// say. The checks run on that handle, and the file is then reopened through
// /proc/self/fd, which names the checked inode and no other; a rename
// between the two steps cannot substitute another file.
//
// os.Root adds O_NOFOLLOW, with which an O_PATH open of a symbolic link
// returns the link itself; the link is then read and its target resolved
// again through root, so links stay confined as in every other step.
func openRegularInRoot(root *os.Root, rel string, limit int64) (*os.File, error) {
	name := rel
	for range maxSymlinks {
		pf, err := root.OpenFile(name, oPath, 0)
		if err != nil {
			return nil, err
		}
		fi, err := pf.Stat()
		if err != nil {
			pf.Close()
			return nil, err
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			pf.Close()
			target, err := root.Readlink(name)
			if err != nil {
				return nil, err
			}
			if strings.HasPrefix(target, "/") {
				return nil, fmt.Errorf("%s: absolute symbolic link %q", rel, target)
			}
			if i := strings.LastIndexByte(name, '/'); i >= 0 {
				target = name[:i+1] + target
			}
			name = target
			continue
		}
		f, err := reopenChecked(pf, rel, fi, limit)
		pf.Close()
		return f, err
	}
	return nil, fmt.Errorf("%w: %s", errTooManySymlinks, rel)
}

// reopenChecked checks the O_PATH handle pf and reopens its inode
// read-only, non-blocking.
func reopenChecked(pf *os.File, rel string, fi fs.FileInfo, limit int64) (*os.File, error) {
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file (%s)", rel, fi.Mode().Type())
	}
	if err := checkNotPseudoFS(pf); err != nil {
		return nil, err
	}
	if fi.Size() > limit {
		return nil, fmt.Errorf("%w: %d bytes, more than %d", errTooLarge, fi.Size(), limit)
	}
	fdPath := procRoot + "/self/fd/" + strconv.FormatUint(uint64(pf.Fd()), 10)
	f, err := os.OpenFile(fdPath, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if err != nil {
		return nil, err
	}
	got, err := f.Stat()
	if err == nil && !os.SameFile(fi, got) {
		err = fmt.Errorf("aiagent: %s changed while being opened", rel)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}
