package aiagent

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
)

// SignatureSuffix is appended to the manifest path to find its detached
// signature file: /etc/agentid/manifest.json is signed by
// /etc/agentid/manifest.json.sig, in the same root filesystem.
const SignatureSuffix = ".sig"

// MaxKeyIDLength is the longest signing key id. Key ids become signer
// selector values, so they follow the same rules as agent names.
const MaxKeyIDLength = 128

// maxSignatureFileSize caps the signature file: an ECDSA P-256 signature in
// base64 with the JSON around it is well under 512 bytes.
const maxSignatureFileSize = 4096

// signatureFile is the parsed detached signature:
//
//	{"apiVersion": "agentid.dev/v1", "keyId": "release-2025", "signature": "<base64>"}
type signatureFile struct {
	keyID     string
	signature []byte
}

// SignManifest signs the exact manifest bytes with key and returns the
// contents of the detached signature file (the manifest's path plus
// SignatureSuffix), newline-terminated. key must be an ed25519.PrivateKey or
// an *ecdsa.PrivateKey on P-256; keyID is the id under which the verifying
// public key is configured in signing_keys.
//
// This is the Go equivalent of the openssl commands in the package README,
// for release pipelines and tests written in Go. It does not parse the
// manifest: sign only what ParseManifest accepts.
func SignManifest(keyID string, key crypto.Signer, manifest []byte) ([]byte, error) {
	if !validToken(keyID, MaxKeyIDLength, nameChars) {
		return nil, fmt.Errorf("%w: key id %q: want 1-%d of [A-Za-z0-9._-] starting with a letter or digit", ErrInvalidKey, keyID, MaxKeyIDLength)
	}
	var sig []byte
	var err error
	switch k := key.(type) {
	case ed25519.PrivateKey:
		sig, err = k.Sign(nil, manifest, crypto.Hash(0))
	case *ecdsa.PrivateKey:
		if k.Curve != elliptic.P256() {
			return nil, fmt.Errorf("%w: ECDSA key on %s, want P-256", ErrInvalidKey, k.Curve.Params().Name)
		}
		digest := sha256.Sum256(manifest)
		sig, err = k.Sign(rand.Reader, digest[:], crypto.SHA256)
	default:
		return nil, fmt.Errorf("%w: %T, want ed25519.PrivateKey or *ecdsa.PrivateKey", ErrInvalidKey, key)
	}
	if err != nil {
		return nil, fmt.Errorf("aiagent: failed to sign manifest: %w", err)
	}
	out, err := json.Marshal(struct {
		APIVersion string `json:"apiVersion"`
		KeyID      string `json:"keyId"`
		Signature  string `json:"signature"`
	}{APIVersionV1, keyID, base64.StdEncoding.EncodeToString(sig)})
	if err != nil {
		return nil, fmt.Errorf("aiagent: failed to encode signature file: %w", err)
	}
	return append(out, '\n'), nil
}

// parseSignatureFile parses a detached signature file as strictly as a
// manifest. Errors wrap ErrInvalidSignatureFile or ErrUnsupportedAPIVersion.
func parseSignatureFile(data []byte) (signatureFile, error) {
	fields, err := decodeObject(data)
	if err != nil {
		return signatureFile{}, fmt.Errorf("%w: %w", ErrInvalidSignatureFile, err)
	}
	var apiVersion, keyID, sig64 string
	if err := decodeString(fields, "apiVersion", &apiVersion); err != nil {
		return signatureFile{}, fmt.Errorf("%w: %w", ErrInvalidSignatureFile, err)
	}
	if apiVersion != APIVersionV1 {
		return signatureFile{}, fmt.Errorf("%w: signature file %q (want %q)", ErrUnsupportedAPIVersion, apiVersion, APIVersionV1)
	}
	if err := checkFields(fields, signatureFields); err != nil {
		return signatureFile{}, fmt.Errorf("%w: %w", ErrInvalidSignatureFile, err)
	}
	if err := decodeString(fields, "keyId", &keyID); err != nil {
		return signatureFile{}, fmt.Errorf("%w: %w", ErrInvalidSignatureFile, err)
	}
	if !validToken(keyID, MaxKeyIDLength, nameChars) {
		return signatureFile{}, fmt.Errorf("%w: keyId %q: want 1-%d of [A-Za-z0-9._-] starting with a letter or digit", ErrInvalidSignatureFile, keyID, MaxKeyIDLength)
	}
	if err := decodeString(fields, "signature", &sig64); err != nil {
		return signatureFile{}, fmt.Errorf("%w: %w", ErrInvalidSignatureFile, err)
	}
	sig, err := base64.StdEncoding.Strict().DecodeString(sig64)
	if err != nil || len(sig) == 0 {
		return signatureFile{}, fmt.Errorf("%w: signature: not standard base64 with padding", ErrInvalidSignatureFile)
	}
	return signatureFile{keyID: keyID, signature: sig}, nil
}

// VerifyManifestSignature checks a detached signature file (its contents,
// as SignManifest writes them) over the exact manifest bytes, exactly as the
// plugin does, and returns the id of the key that verified it. keys maps key
// ids to ed25519.PublicKey or *ecdsa.PublicKey (P-256) values, e.g. from
// ParsePublicKeyPEM. A release pipeline or CLI uses it to check a signature
// before shipping it.
//
// Errors wrap ErrInvalidSignatureFile, ErrUnsupportedAPIVersion,
// ErrUnknownKeyID or ErrBadSignature. The key id is returned with the last
// two, for the log.
func VerifyManifestSignature(keys map[string]crypto.PublicKey, manifest, signatureFile []byte) (string, error) {
	sig, err := parseSignatureFile(signatureFile)
	if err != nil {
		return "", err
	}
	if err := verifyManifest(keys, manifest, sig); err != nil {
		return sig.keyID, err
	}
	return sig.keyID, nil
}

// ParsePublicKeyPEM reads a PEM "PUBLIC KEY" block (PKIX, as written by
// `openssl pkey -pubout`) holding an Ed25519 or ECDSA P-256 key, the only key
// types the plugin accepts. Errors wrap ErrInvalidKey.
func ParsePublicKeyPEM(data []byte) (crypto.PublicKey, error) {
	key, err := parsePublicKeyPEM(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidKey, err)
	}
	return key, nil
}

// verifyManifest checks sig over the exact manifest bytes with the key it
// names. The key's type alone picks the algorithm (Ed25519, or ECDSA P-256
// over SHA-256 with an ASN.1 DER signature): the signature file has no
// algorithm field for an attacker to choose.
func verifyManifest(keys map[string]crypto.PublicKey, manifest []byte, sig signatureFile) error {
	key, ok := keys[sig.keyID]
	if !ok {
		return fmt.Errorf("%w: %q", ErrUnknownKeyID, sig.keyID)
	}
	var good bool
	switch k := key.(type) {
	case ed25519.PublicKey:
		good = len(sig.signature) == ed25519.SignatureSize && ed25519.Verify(k, manifest, sig.signature)
	case *ecdsa.PublicKey:
		digest := sha256.Sum256(manifest)
		good = ecdsa.VerifyASN1(k, digest[:], sig.signature)
	}
	if !good {
		return fmt.Errorf("%w: key %q", ErrBadSignature, sig.keyID)
	}
	return nil
}

// parsePublicKeyPEM is ParsePublicKeyPEM with unwrapped errors, for callers
// that add the key id.
func parsePublicKeyPEM(data []byte) (crypto.PublicKey, error) {
	block, rest := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("no PEM block")
	}
	if block.Type != "PUBLIC KEY" {
		return nil, fmt.Errorf("PEM block %q, want \"PUBLIC KEY\"", block.Type)
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, fmt.Errorf("data after the PEM block")
	}
	key, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("not a PKIX public key: %w", err)
	}
	switch k := key.(type) {
	case ed25519.PublicKey:
		return k, nil
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return nil, fmt.Errorf("ECDSA key on %s, want P-256", k.Curve.Params().Name)
		}
		return k, nil
	default:
		return nil, fmt.Errorf("%T, want Ed25519 or ECDSA P-256", key)
	}
}
