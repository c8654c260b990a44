package aiagent

import (
	"bytes"
	"slices"
	"strings"
	"testing"
)

func TestScriptArg(t *testing.T) {
	for _, tc := range []struct {
		cmdline string
		want    string
	}{
		{"python3\x00/app/agent.py\x00", "/app/agent.py"},
		{"python3\x00/app/agent.py\x00--port\x008080\x00", "/app/agent.py"},
		{"/usr/bin/python3\x00-I\x00/app/agent.py\x00", "/app/agent.py"},
		{"python3\x00-IsB\x00/app/agent.py\x00", "/app/agent.py"},
		{"python3\x00/app/agent.py", "/app/agent.py"}, // no final NUL (argv rewritten)
		{"python3\x00", ""},
		{"python3\x00-I\x00", ""},
		{"python3\x00agent.py\x00", ""},                            // relative: depends on the cwd
		{"python3\x00-W\x00/app/agent.py\x00/tmp/evil.py\x00", ""}, // -W takes an argument
		{"python3\x00-c\x00import evil\x00/app/agent.py\x00", ""},
		{"python3\x00-m\x00evil\x00", ""},
		{"python3\x00-\x00/app/agent.py\x00", ""}, // "-" is standard input
		{"python3\x00-I\x00-u\x00/app/agent.py\x00", ""},
		{"", ""},
	} {
		got, ok := scriptArg([]byte(tc.cmdline))
		if got != tc.want || ok != (tc.want != "") {
			t.Errorf("scriptArg(%q) = %q, %v; want %q", tc.cmdline, got, ok, tc.want)
		}
	}
}

// TestLoadsCode goes by family: every dynamic-loader variable for every
// process, the interpreters' families only for interpreted agents, in the
// spellings that reach them.
func TestLoadsCode(t *testing.T) {
	always := []string{"LD_PRELOAD", "LD_AUDIT", "LD_LIBRARY_PATH", "LD_ANYTHING_NEW"}
	interpreted := []string{"PYTHONPATH", "PYTHONSTARTUP", "PYTHONHOME", "PYTHONUSERBASE", "PYTHONINSPECT", "NODE_OPTIONS", "NODE_PATH",
		"PERL5LIB", "PERL5OPT", "PERLLIB", "RUBYOPT", "RUBYLIB", "GEM_PATH", "BUNDLE_GEMFILE", "CLASSPATH", "JAVA_TOOL_OPTIONS",
		"_JAVA_OPTIONS", "JDK_JAVA_OPTIONS", "BASH_ENV", "ENV"}
	harmless := []string{"PATH", "HOME", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE", "PYTHONIOENCODING", "PYTHONUTF8", "NODE_ENV",
		"ld_preload", "AGENTID_MANIFEST", "SPIFFE_ENDPOINT_SOCKET", "GODEBUG"}
	for _, n := range always {
		if !loadsCode(n, false) || !loadsCode(n, true) {
			t.Errorf("%s: not refused", n)
		}
	}
	for _, n := range interpreted {
		if loadsCode(n, false) || !loadsCode(n, true) {
			t.Errorf("%s: want refused for interpreted agents only", n)
		}
	}
	for _, n := range harmless {
		if loadsCode(n, false) || loadsCode(n, true) {
			t.Errorf("%s: refused", n)
		}
	}
}

func TestScanEnvironNames(t *testing.T) {
	long := strings.Repeat("x", 10000)
	env := "A=1\x00" + long + "=v\x00B=" + long + "\x00\x00C\x00LD_PRELOAD=/x"
	var got []string
	if err := scanEnvironNames(strings.NewReader(env), func(n string) bool { got = append(got, n); return true }); err != nil {
		t.Fatal(err)
	}
	if want := []string{"A", long[:4096], "B", "C", "LD_PRELOAD"}; !slices.Equal(got, want) {
		t.Fatalf("names %q", got)
	}
}

func FuzzScriptArg(f *testing.F) {
	for _, s := range []string{"python3\x00/app/agent.py\x00", "python3\x00-I\x00/a\x00", "\x00", "", "-\x00-\x00/"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, cmdline []byte) {
		script, ok := scriptArg(cmdline)
		if !ok {
			if script != "" {
				t.Fatal("script without ok")
			}
			return
		}
		// The script is an absolute argument of the command line, and
		// the first or second after argv[0].
		args := strings.Split(strings.TrimSuffix(string(cmdline), "\x00"), "\x00")
		if !strings.HasPrefix(script, "/") || !(args[1] == script || len(args) > 2 && args[2] == script && strings.HasPrefix(args[1], "-")) {
			t.Fatalf("script %q from %q", script, cmdline)
		}
	})
}

func FuzzScanEnvironNames(f *testing.F) {
	for _, s := range []string{"A=1\x00B=2\x00", "", "\x00\x00", "LD_PRELOAD=x", strings.Repeat("a", 5000) + "\x00B=1"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, env []byte) {
		var names []string
		if err := scanEnvironNames(bytes.NewReader(env), func(n string) bool { names = append(names, n); return true }); err != nil {
			t.Fatal(err)
		}
		// Every name found is the start of an entry, so a refused
		// variable cannot hide behind a long one before it.
		for _, entry := range bytes.Split(env, []byte{0}) {
			if len(entry) == 0 || len(entry) > 4096 {
				continue
			}
			name, _, _ := bytes.Cut(entry, []byte("="))
			if !slices.Contains(names, string(name)) {
				t.Fatalf("entry %q not named in %q", entry, names)
			}
		}
	})
}
