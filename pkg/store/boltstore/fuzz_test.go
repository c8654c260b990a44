package boltstore

import (
	"errors"
	"testing"

	"github.com/agentid/agentid/pkg/store"
)

// Page tokens come back from API callers: the parsers must refuse anything
// the store did not issue without panicking, and accept exactly one text
// form of each token they issue. fuzzTag stands for the filter of the
// listing; a token with another tag must be refused.

var fuzzTag = filterTag("https://idp.example.com", "alice", "", "0")

func FuzzParseDelegationToken(f *testing.F) { fuzzToken(f, tokenDelegations) }

func FuzzParseEventToken(f *testing.F) { fuzzToken(f, tokenEvents) }

// fuzzToken checks parseToken for tokens of kind, seeded with tokens of
// both kinds and tags.
func fuzzToken(f *testing.F, kind byte) {
	for _, seed := range []string{
		"", "not a token", "ZGxnXzAw", "ZQAAAAAAAAAA",
		makeToken(tokenDelegations, 1, fuzzTag), makeToken(tokenDelegations, 1, [4]byte{}),
		makeToken(tokenEvents, 7, fuzzTag), makeToken(tokenEvents, 1, [4]byte{1}),
		makeToken(tokenEvents, ^uint64(0), fuzzTag),
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, token string) {
		seq, err := parseToken(kind, token, fuzzTag)
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
		if again := makeToken(kind, seq, fuzzTag); again != token {
			t.Fatalf("token %q parsed to %d, which encodes as %q", token, seq, again)
		}
	})
}

func TestPageTokenOfAnotherFilter(t *testing.T) {
	token := makeToken(tokenDelegations, 5, filterTag("https://idp.example.com", "alice", "", "0"))
	if n, err := parseToken(tokenDelegations, token, filterTag("https://idp.example.com", "alice", "", "0")); err != nil || n != 5 {
		t.Fatalf("same filter: %d, %v", n, err)
	}
	// Fields are length-prefixed: moving a character between them changes the tag.
	_, err := parseToken(tokenDelegations, token, filterTag("https://idp.example.coma", "lice", "", "0"))
	if !errors.Is(err, store.ErrInvalidArgument) || err.Error() != "store: invalid argument: page token was made for another filter" {
		t.Fatalf("another filter: %v", err)
	}
}
