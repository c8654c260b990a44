package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// median is the middle of xs (the mean of the two middle values for an even
// count), NaN-free: an empty xs gives 0. xs is not modified.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// percentile is the nearest-rank p-th percentile (0 < p <= 100) of sorted
// latencies: the smallest value with at least p% of the values at or below
// it. An empty slice gives 0.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(float64(len(sorted))*p/100 + 0.999999999)
	rank = max(1, min(rank, len(sorted)))
	return sorted[rank-1]
}

// clockTicks is the kernel's USER_HZ, the unit of utime and stime in
// /proc/<pid>/stat; 100 on every Linux architecture Go supports.
const clockTicks = 100

// procStat is what the benchmark reads from /proc/<pid>/stat: the parent
// pid (to find a plugin process spire-server started) and the CPU time the
// process used so far, user plus system.
type procStat struct {
	ppid int
	cpu  time.Duration
}

// parseProcStat decodes the content of /proc/<pid>/stat. The command name
// (field 2) is in parentheses and may hold spaces and parentheses itself,
// so the fields are counted from the last ')'.
func parseProcStat(b []byte) (procStat, error) {
	s := string(b)
	end := strings.LastIndexByte(s, ')')
	if end < 0 {
		return procStat{}, fmt.Errorf("bench: proc stat: no command name")
	}
	// After the name: state(3) ppid(4) ... utime(14) stime(15).
	f := strings.Fields(s[end+1:])
	if len(f) < 13 {
		return procStat{}, fmt.Errorf("bench: proc stat: %d fields after the command name, want at least 13", len(f))
	}
	ppid, err := strconv.Atoi(f[1])
	if err != nil {
		return procStat{}, fmt.Errorf("bench: proc stat: ppid: %w", err)
	}
	var ticks int64
	for _, v := range f[11:13] {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return procStat{}, fmt.Errorf("bench: proc stat: cpu time %q", v)
		}
		ticks += n
	}
	return procStat{ppid: ppid, cpu: time.Duration(ticks) * time.Second / clockTicks}, nil
}

// readProcStat reads /proc/<pid>/stat.
func readProcStat(pid int) (procStat, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return procStat{}, fmt.Errorf("bench: %w", err)
	}
	return parseProcStat(b)
}

// childrenOf lists the pids whose parent is pid: the external plugins a
// SPIRE process started, whose CPU time is not in the parent's own.
func childrenOf(pid int) ([]int, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	var out []int
	for _, e := range ents {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := readProcStat(child)
		if err != nil {
			continue // ended while we looked
		}
		if st.ppid == pid {
			out = append(out, child)
		}
	}
	return out, nil
}

// cpuOf is the CPU time used so far by each of pids.
func cpuOf(pids []int) ([]time.Duration, error) {
	out := make([]time.Duration, len(pids))
	for i, pid := range pids {
		st, err := readProcStat(pid)
		if err != nil {
			return nil, err
		}
		out[i] = st.cpu
	}
	return out, nil
}

// loadAverage is the first three fields of /proc/loadavg ("1.02 0.87 0.55"),
// reported beside every figure: the machine is shared.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}
