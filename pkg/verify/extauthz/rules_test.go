package extauthz_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/agentid/agentid/pkg/verify/extauthz"
	"github.com/agentid/agentid/pkg/verify/internal/testca"
)

// TestNormalizePath goes over the spellings of one path that upstreams read
// alike, and the ones that have no single reading.
func TestNormalizePath(t *testing.T) {
	for _, tt := range []struct {
		in, want, err string
	}{
		{"/", "/", ""},
		{"/admin/secret", "/admin/secret", ""},
		{"/admin/", "/admin/", ""},
		// Slashes.
		{"//admin/secret", "/admin/secret", ""},
		{"/admin//secret", "/admin/secret", ""},
		{"/admin///", "/admin/", ""},
		{"///", "/", ""},
		// Dot segments.
		{"/./admin/secret", "/admin/secret", ""},
		{"/public/../admin/secret", "/admin/secret", ""},
		{"/../admin/secret", "/admin/secret", ""},
		{"/../../../admin/secret", "/admin/secret", ""},
		{"/admin/./secret", "/admin/secret", ""},
		{"/admin/x/..", "/admin/", ""},
		{"/admin/.", "/admin/", ""},
		{"/admin/..", "/", ""},
		{"/..", "/", ""},
		{"/public/..//admin/secret", "/admin/secret", ""},
		{"/admin/...", "/admin/...", ""}, // not a dot segment
		{"/admin/.x", "/admin/.x", ""},
		// Percent-encoded unreserved characters.
		{"/%61dmin/secret", "/admin/secret", ""},
		{"/%41DMIN", "/ADMIN", ""},
		{"/%2e/admin", "/admin", ""},
		{"/%2E%2E/admin/secret", "/admin/secret", ""},
		{"/public/%2e%2e/admin/secret", "/admin/secret", ""},
		{"/public/.%2e/admin", "/admin", ""},
		{"/a%2db%5fc%7ed", "/a-b_c~d", ""},
		// Other encodings keep their byte, hex upper-cased.
		{"/a%3bb", "/a%3Bb", ""},
		{"/a%20b", "/a%20b", ""},
		{"/a%00b", "/a%00b", ""},
		{"/a%c3%a9", "/a%C3%A9", ""},
		{"/a%25", "/a%25", ""},
		{"/a%25zz", "/a%25zz", ""},
		// Sub-delimiters and ':' '@' are path characters.
		{"/a:b@c!$&'()*+,=", "/a:b@c!$&'()*+,=", ""},
		// Refused.
		{"", "", "does not start with /"},
		{"admin", "", "does not start with /"},
		{"*", "", "does not start with /"},
		{"http://x/admin", "", "does not start with /"},
		{"/admin%2fsecret", "", `encoded '/' at byte 6`},
		{"/admin%2Fsecret", "", `encoded '/' at byte 6`},
		{"/admin%5csecret", "", `encoded '\\' at byte 6`},
		{`/admin\secret`, "", "backslash at byte 6"},
		{"/%252e%252e/admin", "", "double percent-encoding"},
		{"/%25%610", "", "double percent-encoding"}, // found by FuzzNormalizePath
		{"/a%25%2541", "", "double percent-encoding"},
		{"/admin;x/secret", "", "segment parameter (;) at byte 6"},
		{"/admin%", "", "malformed percent-encoding at byte 6"},
		{"/admin%4", "", "malformed percent-encoding at byte 6"},
		{"/admin%zz", "", "malformed percent-encoding at byte 6"},
		{"/admin secret", "", "byte 0x20 at byte 6 is not allowed in a path"},
		{"/admin\x00", "", "byte 0x00 at byte 6 is not allowed in a path"},
		{"/admin\x7f", "", "byte 0x7f at byte 6 is not allowed in a path"},
		{"/admin#x", "", "byte 0x23 at byte 6 is not allowed in a path"},
		{"/adm\xc3\xadn", "", "byte 0xc3 at byte 4 is not allowed in a path"},
		{"/a|b", "", "byte 0x7c at byte 2 is not allowed in a path"},
	} {
		got, err := extauthz.NormalizePath(tt.in)
		if tt.err != "" {
			if want := extauthz.ErrBadPath.Error() + ": " + tt.err; err == nil || err.Error() != want || !errors.Is(err, extauthz.ErrBadPath) {
				t.Errorf("NormalizePath(%q) = %q, %v; want error %q", tt.in, got, err, want)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("NormalizePath(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

// TestRulesSeeNormalisedPaths: a rule denying /admin/ before one allowing
// everything else holds against every spelling of /admin/secret; the
// spellings with no single reading are refused with 400; rules that want
// the raw spelling have request.raw_path.
func TestRulesSeeNormalisedPaths(t *testing.T) {
	env := testca.NewEnv(t)
	tok := env.Good(t)
	c := newClientWith(t, env.Config(), nil, []extauthz.Rule{
		{Name: "no-admin", Match: `request.path.startsWith("/admin/")`, Allow: `false`},
		{Name: "raw-seen", Match: `request.raw_path == "//raw"`, Allow: `request.path == "/raw"`},
		{Name: "everything-else", Allow: `true`},
	})
	for _, tt := range []struct {
		path   string
		status int
		desc   string
	}{
		{"/public/x", 200, ""},
		{"/admin/secret", 403, `extauthz: denied by rule "no-admin"`},
		{"//admin/secret", 403, `extauthz: denied by rule "no-admin"`},
		{"/admin//secret", 403, `extauthz: denied by rule "no-admin"`},
		{"/./admin/secret", 403, `extauthz: denied by rule "no-admin"`},
		{"/public/../admin/secret", 403, `extauthz: denied by rule "no-admin"`},
		{"/public/%2e%2e/admin/secret", 403, `extauthz: denied by rule "no-admin"`},
		{"/%61dmin/secret", 403, `extauthz: denied by rule "no-admin"`},
		{"/admin/secret?x=1", 403, `extauthz: denied by rule "no-admin"`},
		{"/admin%2fsecret", 400, `extauthz: request path cannot be normalised: encoded '/' at byte 6`},
		{`/admin\secret`, 400, `extauthz: request path cannot be normalised: backslash at byte 6`},
		{"/admin;x/secret", 400, `extauthz: request path cannot be normalised: segment parameter (;) at byte 6`},
		{"/%252e%252e/admin/secret", 400, `extauthz: request path cannot be normalised: double percent-encoding`},
		{"//raw", 200, ""},
	} {
		res := check(t, c, envoyCheck(env.Analyst, "GET", tt.path, map[string]string{"authorization": "Bearer " + tok}))
		if tt.status == 200 {
			allowed(t, res)
			continue
		}
		if d := denied(t, res); d.status != tt.status || d.desc != tt.desc {
			t.Errorf("%s: got %d %q, want %d %q", tt.path, d.status, d.desc, tt.status, tt.desc)
		}
	}
}

// FuzzNormalizePath: whatever NormalizePath accepts comes out in its one
// spelling (normalising it again changes nothing) and with none of what
// it removes: no empty or dot segment, no encoded unreserved character,
// slash or backslash, only path characters.
func FuzzNormalizePath(f *testing.F) {
	for _, s := range []string{"/", "//a/./b/../c/", "/%2e%2E/%61", "/a%2fb", "/a;b", "/..", "/a/%252e", "/%", "/a%C3%a9", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out, err := extauthz.NormalizePath(in)
		if err != nil {
			if !errors.Is(err, extauthz.ErrBadPath) {
				t.Fatalf("error %v is not ErrBadPath", err)
			}
			return
		}
		again, err := extauthz.NormalizePath(out)
		if err != nil || again != out {
			t.Fatalf("NormalizePath(%q) = %q, again %q, %v", in, out, again, err)
		}
		if !strings.HasPrefix(out, "/") || strings.Contains(out, "//") {
			t.Fatalf("NormalizePath(%q) = %q", in, out)
		}
		segs := strings.Split(out[1:], "/")
		for i, seg := range segs {
			if seg == "." || seg == ".." || seg == "" && i != len(segs)-1 {
				t.Fatalf("NormalizePath(%q) = %q: segment %q", in, out, seg)
			}
		}
		for i := 0; i < len(out); i++ {
			if out[i] == '%' {
				enc := strings.ToUpper(out[i+1 : i+3])
				if enc != out[i+1:i+3] || strings.ContainsAny(string(rune(hexByte(enc))), "/\\") || isUnreserved(hexByte(enc)) {
					t.Fatalf("NormalizePath(%q) = %q: %%%s left", in, out, out[i+1:i+3])
				}
			}
			if c := out[i]; c <= ' ' || c >= 0x7f || strings.IndexByte("\\;#\"<>^`{|}", c) >= 0 {
				t.Fatalf("NormalizePath(%q) = %q: byte %q", in, out, c)
			}
		}
	})
}

func hexByte(s string) byte {
	var b byte
	for _, c := range []byte(s) {
		b <<= 4
		switch {
		case c >= '0' && c <= '9':
			b |= c - '0'
		default:
			b |= c - 'A' + 10
		}
	}
	return b
}

func isUnreserved(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-._~", c) >= 0
}
