#!/bin/sh
# Regenerates the openssl fixtures with exactly the commands documented in
# ../README.md ("Signing a manifest"), so that TestOpenSSLFixtures proves those
# commands produce signature files the plugin accepts. The private keys are
# thrown away; only public keys, the manifest and the signatures are kept.
set -eu
cd "$(dirname "$0")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

cat > manifest.json <<'JSON'
{
  "apiVersion": "agentid.dev/v1",
  "name": "gdpr-compliance",
  "version": "1.4.2",
  "model": {"provider": "anthropic", "name": "claude-sonnet-4"},
  "tools": ["crm.read", "mcp:github"],
  "owner": "team-compliance@example.com"
}
JSON

# Ed25519: sign the raw bytes.
openssl genpkey -algorithm ed25519 -out "$tmp/ed25519.key"
openssl pkey -in "$tmp/ed25519.key" -pubout -out ed25519.pub.pem
sig=$(openssl pkeyutl -sign -inkey "$tmp/ed25519.key" -rawin -in manifest.json | base64 -w0)
printf '{"apiVersion":"agentid.dev/v1","keyId":"%s","signature":"%s"}\n' release-ed25519 "$sig" > manifest.json.ed25519.sig

# ECDSA P-256: SHA-256 digest, ASN.1 DER signature.
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$tmp/p256.key"
openssl pkey -in "$tmp/p256.key" -pubout -out p256.pub.pem
sig=$(openssl dgst -sha256 -sign "$tmp/p256.key" manifest.json | base64 -w0)
printf '{"apiVersion":"agentid.dev/v1","keyId":"%s","signature":"%s"}\n' release-p256 "$sig" > manifest.json.p256.sig

# Keys the plugin must refuse.
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384 -out "$tmp/p384.key"
openssl pkey -in "$tmp/p384.key" -pubout -out p384.pub.pem
openssl genpkey -quiet -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$tmp/rsa.key"
openssl pkey -in "$tmp/rsa.key" -pubout -out rsa.pub.pem
