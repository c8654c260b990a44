package aiagent_test

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"fmt"

	"github.com/agentid/agentid/pkg/plugin/workloadattestor/aiagent"
)

const exampleManifest = `{
  "apiVersion": "agentid.dev/v2",
  "name": "gdpr-compliance",
  "version": "1.4.2",
  "model": {"provider": "anthropic", "name": "claude-sonnet-4"},
  "tools": ["mcp:github", "crm.read"],
  "owner": "team-compliance@example.com",
  "binding": {"executables": ["3a6eb0790f39ac87c94f3856b2dd2c5d110e6811602261a9a923d3bb23adc8b7"]}
}
`

// A release pipeline checks a manifest before it ships it in the image.
func ExampleParseManifest() {
	m, err := aiagent.ParseManifest([]byte(exampleManifest))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(m.Name, m.Version, m.Model.Provider+"/"+m.Model.Name, m.Tools)
	fmt.Println(m.Binding.Executables)

	_, err = aiagent.ParseManifest(bytes.Replace([]byte(exampleManifest), []byte(`"owner"`), []byte(`"Owner"`), 1))
	fmt.Println(err)
	// Output:
	// gdpr-compliance 1.4.2 anthropic/claude-sonnet-4 [crm.read mcp:github]
	// [3a6eb0790f39ac87c94f3856b2dd2c5d110e6811602261a9a923d3bb23adc8b7]
	// aiagent: invalid manifest: unknown field "Owner"
}

// A release pipeline signs the exact manifest bytes it ships and writes the
// result beside the manifest as manifest.json.sig. The spire-agent is then
// configured with the public key under the same key id:
//
//	signing_keys = { "release-2025" = "/etc/spire/agentid/release-2025.pub.pem" }
func ExampleSignManifest() {
	// A fixed seed keeps the example's output stable; use a real key.
	key := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))
	sig, err := aiagent.SignManifest("release-2025", key, []byte(exampleManifest))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Print(string(sig))

	// Before shipping, check it the way the plugin will.
	keys := map[string]crypto.PublicKey{"release-2025": key.Public()}
	keyID, err := aiagent.VerifyManifestSignature(keys, []byte(exampleManifest), sig)
	fmt.Println(keyID, err)
	// Output:
	// {"apiVersion":"agentid.dev/v1","keyId":"release-2025","signature":"Xzv0ayuerZi0F2J/RHmua1Vvs/HcuReyiP2WP5t40C21Cyj7PrgIKQgXRjm9AiXV3W8gy64axFyXoey+XL4RDg=="}
	// release-2025 <nil>
}
