package verify_test

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/agentid/agentid/pkg/verify"
	"github.com/agentid/agentid/pkg/verify/internal/testca"
	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"
)

// FuzzVerify feeds arbitrary tokens, seeded with the table of forgeries, to
// Verify: it must not panic and must fail only with the package's
// sentinels. Its differential branch (accept nothing go-spiffe refuses) is
// reached only by the genuine seeds, since a mutated token no longer
// carries a valid signature: FuzzVerifySigned fuzzes what lies behind the
// signature.
func FuzzVerify(f *testing.F) {
	env := testca.NewEnv(f)
	v := env.Verifier(f)
	for _, tc := range env.Cases(f) {
		f.Add(tc.Token)
	}
	sentinels := []error{
		verify.ErrNoToken, verify.ErrTokenTooLarge, verify.ErrMalformedToken, verify.ErrUnsupportedAlgorithm,
		verify.ErrUnknownKey, verify.ErrBadSignature, verify.ErrTrustDomain, verify.ErrExpired, verify.ErrNotYetValid,
		verify.ErrAudience, verify.ErrPeerMismatch, verify.ErrNoDelegation, verify.ErrMalformedClaims,
		verify.ErrRevoked, verify.ErrRevocationUnknown,
	}
	f.Fuzz(func(t *testing.T, token string) {
		_, err := v.Verify(env.Analyst, token)
		if err == nil {
			if _, theirs := jwtsvid.ParseAndValidate(token, env.Bundles, []string{testca.Audience}); theirs != nil {
				t.Fatalf("accepted a token go-spiffe refuses: %v", theirs)
			}
			return
		}
		for _, s := range sentinels {
			if errors.Is(err, s) {
				return
			}
		}
		t.Fatalf("error wraps no sentinel: %v", err)
	})
}

// FuzzVerifySigned fuzzes the header and claims bytes of a token and signs
// each with the test CA's key, so the signature always verifies and the
// fuzzer explores the header checks and the claims decoding: whatever Verify
// accepts, go-spiffe's ParseAndValidate must accept too, and refusals wrap
// the package's sentinels.
func FuzzVerifySigned(f *testing.F) {
	env := testca.NewEnv(f)
	v := env.Verifier(f)
	header, err := json.Marshal(map[string]any{"alg": "ES256", "kid": testca.KeyID, "typ": "JWT"})
	if err != nil {
		f.Fatal(err)
	}
	good, err := json.Marshal(env.Claims(f))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(header, good)
	f.Add([]byte(`{"alg":"ES256","kid":"`+testca.KeyID+`"}`), good)
	f.Add([]byte(`{"alg":"ES256","kid":"`+testca.KeyID+`","typ":"JOSE","crit":["exp"]}`), good)
	f.Add(header, []byte(`{"sub":"`+env.Analyst.String()+`","aud":"`+testca.Audience+`","exp":`+
		strconv.FormatInt(env.Now.Add(time.Minute).Unix(), 10)+`}`))
	f.Add(header, []byte(`{}`))
	sentinels := []error{
		verify.ErrMalformedToken, verify.ErrUnsupportedAlgorithm, verify.ErrUnknownKey, verify.ErrBadSignature,
		verify.ErrTrustDomain, verify.ErrExpired, verify.ErrNotYetValid, verify.ErrAudience, verify.ErrPeerMismatch,
		verify.ErrNoDelegation, verify.ErrMalformedClaims, verify.ErrRevoked, verify.ErrTokenTooLarge,
	}
	f.Fuzz(func(t *testing.T, header, claims []byte) {
		input := base64.RawURLEncoding.EncodeToString(header) + "." + base64.RawURLEncoding.EncodeToString(claims)
		token := testca.SignInputES256(t, input, env.CA.JWTKey)
		_, err := v.Verify(env.Analyst, token)
		if err == nil {
			if _, theirs := jwtsvid.ParseAndValidate(token, env.Bundles, []string{testca.Audience}); theirs != nil {
				t.Fatalf("accepted a token go-spiffe refuses: %v\nheader %q\nclaims %q", theirs, header, claims)
			}
			return
		}
		for _, s := range sentinels {
			if errors.Is(err, s) {
				return
			}
		}
		t.Fatalf("error wraps no sentinel: %v", err)
	})
}

// FuzzDecodeJSON holds the header and payload decoder to encoding/json,
// whose tokenizer it is built on: whatever it accepts, json.Unmarshal
// accepts with the same value.
func FuzzDecodeJSON(f *testing.F) {
	for _, s := range jsonSamples {
		f.Add(s.in)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got, err := verify.DecodeJSONObject([]byte(in))
		if err != nil {
			return
		}
		var want map[string]any
		if err := json.Unmarshal([]byte(in), &want); err != nil {
			t.Fatalf("accepted %q, encoding/json says %v", in, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("decoded %q as\n%#v\nencoding/json:\n%#v", in, got, want)
		}
	})
}

var jsonSamples = []struct {
	in string
	ok bool
}{
	{`{}`, true},
	{` {"a" : [1, -2.5e3, true, false, null, "x"], "b": {"c": {}}} `, true},
	{`{"s":"\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00 é"}`, true},
	{`{"n":0,"m":-0.0,"e":1E+2}`, true},
	{`{"sub":"spiffe://example.org/a","aud":["x"],"exp":1795741200}`, true},
	{`[]`, false},
	{`{"a":1}x`, false},
	{`{"a":1,}`, false},
	{`{"a":01}`, false},
	{`{"a":1.}`, false},
	{`{"a":.5}`, false},
	{`{"a":1e}`, false},
	{`{"a":1e400}`, false},
	{`{"a":tru}`, false},
	{`{"a":"\x"}`, false},
	{"{\"a\":\"\x01\"}", false},
	{`{a:1}`, false},
	{`{"a":1,"a":2}`, false},          // duplicate: encoding/json keeps the last
	{`{"a":"\ud83d"}`, true},          // lone surrogate escape: U+FFFD, as encoding/json and go-jose
	{"{\"a\":\"\xff\"}", false},       // invalid UTF-8: encoding/json writes U+FFFD
	{`{"a":` + nest(33) + `}`, false}, // deeper than 32
	{`{"a":` + nest(31) + `}`, true},  // 32 levels with the outer object
	{`{"a":"unterminated}`, false},
	{`{"a":[1,2`, false},
}

func nest(n int) string {
	s := "1"
	for i := 0; i < n; i++ {
		s = "[" + s + "]"
	}
	return s
}

func TestDecodeJSON(t *testing.T) {
	for _, s := range jsonSamples {
		got, err := verify.DecodeJSONObject([]byte(s.in))
		if (err == nil) != s.ok {
			t.Errorf("%q: err = %v, want ok=%v", s.in, err, s.ok)
			continue
		}
		if !s.ok {
			continue
		}
		var want map[string]any
		if err := json.Unmarshal([]byte(s.in), &want); err != nil {
			t.Fatalf("%q: encoding/json: %v", s.in, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%q: got %#v, want %#v", s.in, got, want)
		}
	}
}
