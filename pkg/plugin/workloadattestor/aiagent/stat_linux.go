package aiagent

import (
	"fmt"
	"io/fs"
	"os"
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
}

// checkNotPseudoFS refuses files of kernel pseudo file systems. Their
// "regular files" are views of kernel and process state, and the plugin,
// which runs with spire-agent's privileges, must not be talked into reading
// them (e.g. AGENTID_MANIFEST=/proc/self/environ) on a workload's behalf.
func checkNotPseudoFS(f *os.File) error {
	var st syscall.Statfs_t
	if err := syscall.Fstatfs(int(f.Fd()), &st); err != nil {
		return err
	}
	if name, ok := pseudoFS[uint32(st.Type)]; ok {
		return fmt.Errorf("%s is on %s, not a real file system", f.Name(), name)
	}
	return nil
}
