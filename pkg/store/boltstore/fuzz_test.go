package boltstore

import (
	"errors"
	"testing"

	"github.com/agentid/agentid/pkg/store"
)

// Page tokens come back from API callers: the parsers must refuse anything
// the store did not issue without panicking, and accept exactly one text
// form of each token they issue.

func FuzzParseDelegationToken(f *testing.F) {
	f.Add("")
	f.Add(makeToken(tokenDelegations, 1))
	f.Add(makeToken(tokenEvents, 7))
	f.Add("not a token")
	f.Add("ZGxnXzAw")
	f.Fuzz(func(t *testing.T, token string) {
		seq, err := parseToken(tokenDelegations, token)
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
		if again := makeToken(tokenDelegations, seq); again != token {
			t.Fatalf("token %q parsed to %d, which encodes as %q", token, seq, again)
		}
	})
}

func FuzzParseEventToken(f *testing.F) {
	f.Add("")
	f.Add(makeToken(tokenEvents, 1))
	f.Add(makeToken(tokenEvents, ^uint64(0)))
	f.Add(makeToken(tokenDelegations, 1))
	f.Add("ZQAAAAAAAAAA")
	f.Fuzz(func(t *testing.T, token string) {
		seq, err := parseToken(tokenEvents, token)
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
		if again := makeToken(tokenEvents, seq); again != token {
			t.Fatalf("token %q parsed to %d, which encodes as %q", token, seq, again)
		}
	})
}
