package bench

import (
	"os"
	"testing"
	"time"
)

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []float64
		want float64
	}{
		{"empty", nil, 0},
		{"one", []float64{0.98}, 0.98},
		{"odd, unsorted", []float64{1.02, 0.90, 0.99}, 0.99},
		{"even: mean of the middle two", []float64{4, 1, 3, 2}, 2.5},
		{"outlier does not move it", []float64{0.97, 0.98, 0.99, 0.2, 0.98}, 0.98},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := append([]float64(nil), tc.in...)
			if got := median(in); got != tc.want {
				t.Fatalf("median(%v) = %v, want %v", tc.in, got, tc.want)
			}
			for i := range in {
				if in[i] != tc.in[i] {
					t.Fatalf("median reordered its input: %v, was %v", in, tc.in)
				}
			}
		})
	}
}

func TestPercentile(t *testing.T) {
	ms := func(ns ...int) []time.Duration {
		out := make([]time.Duration, len(ns))
		for i, n := range ns {
			out[i] = time.Duration(n) * time.Millisecond
		}
		return out
	}
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = time.Duration(i+1) * time.Millisecond
	}
	for _, tc := range []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{"empty", nil, 50, 0},
		{"single", ms(7), 99, 7 * time.Millisecond},
		{"p50 of 1..100", hundred, 50, 50 * time.Millisecond},
		{"p99 of 1..100", hundred, 99, 99 * time.Millisecond},
		{"p100 is the max", hundred, 100, 100 * time.Millisecond},
		{"p50 of four is the second", ms(1, 2, 3, 4), 50, 2 * time.Millisecond},
		{"p99 of four is the max", ms(1, 2, 3, 4), 99, 4 * time.Millisecond},
		{"tiny p is the min", ms(1, 2, 3, 4), 0.1, 1 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := percentile(tc.sorted, tc.p); got != tc.want {
				t.Fatalf("percentile(p%v) = %v, want %v", tc.p, got, tc.want)
			}
		})
	}
}

func TestParseProcStat(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in      string
		want    procStat
		wantErr string
	}{
		{
			name: "plain",
			in:   "7711 (cat) R 7709 7709 4038 0 -1 4194304 100 0 0 0 250 130 0 0 20 0 1 0 248145\n",
			want: procStat{ppid: 7709, cpu: 3800 * time.Millisecond},
		},
		{
			name: "name with spaces and parentheses",
			in:   "42 (spire (server) x) S 1 42 42 0 -1 0 0 0 0 0 1 2 0 0 20 0 9 0 1",
			want: procStat{ppid: 1, cpu: 30 * time.Millisecond},
		},
		{name: "no name", in: "42 spire S 1", wantErr: "bench: proc stat: no command name"},
		{name: "truncated", in: "42 (x) S 1 2 3", wantErr: "bench: proc stat: 4 fields after the command name, want at least 13"},
		{name: "bad ppid", in: "42 (x) S p 42 42 0 -1 0 0 0 0 0 1 2", wantErr: `bench: proc stat: ppid: strconv.Atoi: parsing "p": invalid syntax`},
		{name: "negative cpu", in: "42 (x) S 1 42 42 0 -1 0 0 0 0 0 -1 2", wantErr: `bench: proc stat: cpu time "-1"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseProcStat([]byte(tc.in))
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

// TestProcSelf reads this process's own entry: the parent is the one the
// runtime reports, and the CPU time already spent is not negative.
func TestProcSelf(t *testing.T) {
	st, err := readProcStat(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if st.ppid != os.Getppid() {
		t.Fatalf("ppid %d, want %d", st.ppid, os.Getppid())
	}
	kids, err := childrenOf(os.Getppid())
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, k := range kids {
		found = found || k == os.Getpid()
	}
	if !found {
		t.Fatalf("children of %d: %v, want this process %d among them", os.Getppid(), kids, os.Getpid())
	}
}
