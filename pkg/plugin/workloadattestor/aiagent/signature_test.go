package aiagent

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestOpenSSLFixtures verifies signatures made by the openssl commands the
// README documents (testdata/gen.sh runs exactly those).
func TestOpenSSLFixtures(t *testing.T) {
	read := func(name string) []byte { return must(os.ReadFile(filepath.Join("testdata", name))) }
	manifest := read("manifest.json")
	if _, err := ParseManifest(manifest); err != nil {
		t.Fatalf("fixture manifest: %v", err)
	}
	keys := map[string]crypto.PublicKey{
		"release-ed25519": must(ParsePublicKeyPEM(read("ed25519.pub.pem"))),
		"release-p256":    must(ParsePublicKeyPEM(read("p256.pub.pem"))),
	}
	for _, tc := range []struct{ file, keyID string }{
		{"manifest.json.ed25519.sig", "release-ed25519"},
		{"manifest.json.p256.sig", "release-p256"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			keyID, err := VerifyManifestSignature(keys, manifest, read(tc.file))
			if err != nil || keyID != tc.keyID {
				t.Errorf("VerifyManifestSignature = %q, %v; want %q", keyID, err, tc.keyID)
			}
			tampered := append([]byte(nil), manifest...)
			tampered[len(tampered)-2] ^= 1
			keyID, err = VerifyManifestSignature(keys, tampered, read(tc.file))
			want := `aiagent: signature does not verify: key "` + tc.keyID + `"`
			if !errors.Is(err, ErrBadSignature) || err.Error() != want || keyID != tc.keyID {
				t.Errorf("tampered: %q, %v; want %q", keyID, err, want)
			}
		})
	}
}

func TestVerifyManifestSignature(t *testing.T) {
	keys := newTestKeys(t)
	manifest := []byte(goodManifest)
	configured := map[string]crypto.PublicKey{
		"ed": keys.ed25519.Public(),
		"ec": keys.p256.Public(),
	}
	for _, tc := range []struct {
		name      string
		sig       []byte
		wantKeyID string
		wantIs    error
		wantErr   string
	}{
		{name: "ed25519", sig: sign(t, "ed", keys.ed25519, manifest), wantKeyID: "ed"},
		{name: "p256", sig: sign(t, "ec", keys.p256, manifest), wantKeyID: "ec"},
		{name: "unknown key id", sig: sign(t, "other", keys.ed25519, manifest), wantKeyID: "other", wantIs: ErrUnknownKeyID, wantErr: `aiagent: unknown signing key id: "other"`},
		{name: "other ed25519 key", sig: sign(t, "ed", keys.ed25519Other, manifest), wantKeyID: "ed", wantIs: ErrBadSignature, wantErr: `aiagent: signature does not verify: key "ed"`},
		{name: "ed25519 signature for the p256 key", sig: sign(t, "ec", keys.ed25519, manifest), wantKeyID: "ec", wantIs: ErrBadSignature, wantErr: `aiagent: signature does not verify: key "ec"`},
		{name: "p256 signature for the ed25519 key", sig: sign(t, "ed", keys.p256, manifest), wantKeyID: "ed", wantIs: ErrBadSignature, wantErr: `aiagent: signature does not verify: key "ed"`},
		{name: "malformed", sig: []byte("{}"), wantIs: ErrInvalidSignatureFile, wantErr: "aiagent: invalid signature file: apiVersion: missing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			keyID, err := VerifyManifestSignature(configured, manifest, tc.sig)
			if keyID != tc.wantKeyID {
				t.Errorf("key id = %q, want %q", keyID, tc.wantKeyID)
			}
			if tc.wantIs == nil {
				if err != nil {
					t.Errorf("error = %v", err)
				}
				return
			}
			if !errors.Is(err, tc.wantIs) || err.Error() != tc.wantErr {
				t.Errorf("error = %v, want %q", err, tc.wantErr)
			}
		})
	}
}

func TestParsePublicKeyPEM(t *testing.T) {
	read := func(name string) []byte { return must(os.ReadFile(filepath.Join("testdata", name))) }
	for _, tc := range []struct {
		name    string
		in      []byte
		wantErr string
	}{
		{"ed25519", read("ed25519.pub.pem"), ""},
		{"p256", read("p256.pub.pem"), ""},
		{"p384", read("p384.pub.pem"), "aiagent: invalid signing key: ECDSA key on P-384, want P-256"},
		{"rsa", read("rsa.pub.pem"), "aiagent: invalid signing key: *rsa.PublicKey, want Ed25519 or ECDSA P-256"},
		{"empty", nil, "aiagent: invalid signing key: no PEM block"},
		{"bad DER", []byte("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"), "aiagent: invalid signing key: not a PKIX public key: asn1: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key, err := ParsePublicKeyPEM(tc.in)
			if tc.wantErr == "" {
				if err != nil || key == nil {
					t.Errorf("ParsePublicKeyPEM: %v", err)
				}
				return
			}
			// The bad DER case ends with encoding/asn1's own text, which is
			// not ours to pin.
			if !errors.Is(err, ErrInvalidKey) || err.Error() != tc.wantErr && !(strings.HasSuffix(tc.wantErr, "asn1: ") && strings.HasPrefix(err.Error(), tc.wantErr)) {
				t.Errorf("error = %v, want %q", err, tc.wantErr)
			}
		})
	}
}

func TestSignManifestErrors(t *testing.T) {
	p384 := must(ecdsa.GenerateKey(elliptic.P384(), rand.Reader))
	rsaKey := must(rsa.GenerateKey(rand.Reader, 1024))
	keys := newTestKeys(t)
	for _, tc := range []struct {
		name, keyID string
		key         crypto.Signer
		wantErr     string
	}{
		{"bad key id", "a b", keys.ed25519, `aiagent: invalid signing key: key id "a b": want 1-128 of [A-Za-z0-9._-] starting with a letter or digit`},
		{"P-384", "k", p384, "aiagent: invalid signing key: ECDSA key on P-384, want P-256"},
		{"RSA", "k", rsaKey, "aiagent: invalid signing key: *rsa.PrivateKey, want ed25519.PrivateKey or *ecdsa.PrivateKey"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := SignManifest(tc.keyID, tc.key, []byte(goodManifest))
			if !errors.Is(err, ErrInvalidKey) || err.Error() != tc.wantErr {
				t.Errorf("error = %v, want %q", err, tc.wantErr)
			}
		})
	}
}

func TestParseSignatureFile(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		wantIs   error
		wantErr  string
	}{
		{"not JSON", "x", ErrInvalidSignatureFile, "aiagent: invalid signature file: not JSON: invalid character 'x' looking for beginning of value"},
		{"no apiVersion", `{"keyId":"k","signature":"AA=="}`, ErrInvalidSignatureFile, "aiagent: invalid signature file: apiVersion: missing"},
		{"other apiVersion", `{"apiVersion":"agentid.dev/v9","keyId":"k","signature":"AA=="}`, ErrUnsupportedAPIVersion, `aiagent: unsupported apiVersion: signature file "agentid.dev/v9" (want "agentid.dev/v1")`},
		{"algorithm field", `{"apiVersion":"agentid.dev/v1","alg":"none","keyId":"k","signature":"AA=="}`, ErrInvalidSignatureFile, `aiagent: invalid signature file: unknown field "alg"`},
		{"no key id", `{"apiVersion":"agentid.dev/v1","signature":"AA=="}`, ErrInvalidSignatureFile, "aiagent: invalid signature file: keyId: missing"},
		{"bad key id", `{"apiVersion":"agentid.dev/v1","keyId":"k/../x","signature":"AA=="}`, ErrInvalidSignatureFile, `aiagent: invalid signature file: keyId "k/../x": want 1-128 of [A-Za-z0-9._-] starting with a letter or digit`},
		{"unpadded base64", `{"apiVersion":"agentid.dev/v1","keyId":"k","signature":"AA"}`, ErrInvalidSignatureFile, "aiagent: invalid signature file: signature: not standard base64 with padding"},
		{"URL base64", `{"apiVersion":"agentid.dev/v1","keyId":"k","signature":"-_8="}`, ErrInvalidSignatureFile, "aiagent: invalid signature file: signature: not standard base64 with padding"},
		{"empty signature", `{"apiVersion":"agentid.dev/v1","keyId":"k","signature":""}`, ErrInvalidSignatureFile, "aiagent: invalid signature file: signature: not standard base64 with padding"},
		{"repeated key id", `{"apiVersion":"agentid.dev/v1","keyId":"a","keyId":"b","signature":"AA=="}`, ErrInvalidSignatureFile, `aiagent: invalid signature file: field "keyId" repeated`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseSignatureFile([]byte(tc.in))
			if !errors.Is(err, tc.wantIs) || err.Error() != tc.wantErr {
				t.Errorf("error = %v\nwant %q", err, tc.wantErr)
			}
		})
	}
}

// FuzzParseSignatureFile checks that the signature file parser never
// panics, wraps its errors, and returns only usable key ids and signatures.
func FuzzParseSignatureFile(f *testing.F) {
	for _, s := range []string{
		string(must(os.ReadFile(filepath.Join("testdata", "manifest.json.p256.sig")))),
		`{"apiVersion":"agentid.dev/v1","keyId":"k","signature":"AA=="}`,
		`{"apiVersion":"agentid.dev/v1","keyId":"k","keyId":"k","signature":"AA=="}`,
		`{"apiVersion":"agentid.dev/v1","keyId":"k","signature":"AA"}`,
		`{}`, ``, `{"apiVersion":null}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		sig, err := parseSignatureFile(data)
		if err != nil {
			if !errors.Is(err, ErrInvalidSignatureFile) && !errors.Is(err, ErrUnsupportedAPIVersion) {
				t.Fatalf("error %v wraps no sentinel", err)
			}
			return
		}
		if !validToken(sig.keyID, MaxKeyIDLength, nameChars) || len(sig.signature) == 0 || strings.ContainsRune(sig.keyID, ':') {
			t.Fatalf("accepted %+v", sig)
		}
	})
}
