package pagetoken

import (
	"errors"
	"testing"

	"github.com/agentid/agentid/pkg/store"
)

// Page tokens come back from API callers: the parser must refuse anything
// a store did not issue without panicking, and accept exactly one text
// form of each token they issue. fuzzTag stands for the filter of the
// listing; a token with another tag must be refused.

var fuzzTag = Tag("https://idp.example.com", "alice", "", "0")

func FuzzParseDelegationToken(f *testing.F) { fuzzToken(f, Delegations) }

func FuzzParseEventToken(f *testing.F) { fuzzToken(f, Events) }

// fuzzToken checks parseToken for tokens of kind, seeded with tokens of
// both kinds and tags.
func fuzzToken(f *testing.F, kind byte) {
	for _, seed := range []string{
		"", "not a token", "ZGxnXzAw", "ZQAAAAAAAAAA",
		Make(Delegations, 1, fuzzTag), Make(Delegations, 1, [4]byte{}),
		Make(Events, 7, fuzzTag), Make(Events, 1, [4]byte{1}),
		Make(Events, ^uint64(0), fuzzTag),
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, token string) {
		seq, err := Parse(kind, token, fuzzTag)
		if err != nil {
			if !errors.Is(err, store.ErrInvalidArgument) {
				t.Fatalf("error %v does not wrap ErrInvalidArgument", err)
			}
			return
		}
		if token == "" {
			if seq != 0 {
				t.Fatalf("empty token gave %d", seq)
			}
			return
		}
		if again := Make(kind, seq, fuzzTag); again != token {
			t.Fatalf("token %q parsed to %d, which encodes as %q", token, seq, again)
		}
	})
}

func TestPageTokenOfAnotherFilter(t *testing.T) {
	token := Make(Delegations, 5, Tag("https://idp.example.com", "alice", "", "0"))
	if n, err := Parse(Delegations, token, Tag("https://idp.example.com", "alice", "", "0")); err != nil || n != 5 {
		t.Fatalf("same filter: %d, %v", n, err)
	}
	// Fields are length-prefixed: moving a character between them changes the tag.
	_, err := Parse(Delegations, token, Tag("https://idp.example.coma", "lice", "", "0"))
	if !errors.Is(err, store.ErrInvalidArgument) || err.Error() != "store: invalid argument: page token was made for another filter" {
		t.Fatalf("another filter: %v", err)
	}
}
