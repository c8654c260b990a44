package userpage

import (
	"net/url"
	"strings"
	"testing"
)

// FuzzLocalPath: whatever next a sign-in link carries, the page returns
// only to a path on its own site.
func FuzzLocalPath(f *testing.F) {
	for _, s := range []string{"/delegations", "//evil.example", "/\\evil", "https://evil.example", "/%0d%0aX", "/a?b=c#d", "/.."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, next string) {
		got := localPath(next)
		u, err := url.Parse(got)
		if err != nil || u.Scheme != "" || u.Host != "" || !strings.HasPrefix(got, "/") || strings.HasPrefix(got, "//") ||
			strings.ContainsAny(got, "\\\r\n") {
			t.Fatalf("localPath(%q) = %q leaves the site", next, got)
		}
		base, _ := url.Parse("https://page.example/")
		if r := base.ResolveReference(u); r.Host != "page.example" {
			t.Fatalf("localPath(%q) = %q resolves to %s", next, got, r)
		}
	})
}

// FuzzParseListQuery: the listing's query never panics and gives only
// values the listing understands.
func FuzzParseListQuery(f *testing.F) {
	for _, s := range []string{"state=active&agent=spiffe%3A%2F%2Fexample.org%2Fa&page=2", "page=-1", "state=", "agent=%zz", "page=99999999999999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		lq, err := parseListQuery(q)
		if err != nil {
			return
		}
		if lq.page < 1 || lq.page > MaxListed {
			t.Fatalf("page %d", lq.page)
		}
		if lq.agent != "" && !strings.HasPrefix(lq.agent, "spiffe://") {
			t.Fatalf("agent %q", lq.agent)
		}
	})
}
