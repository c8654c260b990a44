package aiagent

import (
	"context"
	"slices"
	"testing"

	"github.com/hashicorp/go-hclog"
	workloadattestorv1 "github.com/spiffe/spire-plugin-sdk/proto/spire/plugin/agent/workloadattestor/v1"
	configv1 "github.com/spiffe/spire-plugin-sdk/proto/spire/service/common/config/v1"
)

// BenchmarkAttest measures one attestation of a live process with a warm
// executable digest cache: two /proc stat reads, the environment, the
// manifest (and signature) through /proc/<pid>/root, parsing, verification
// and the exe stat. It calls the method directly, without the gRPC hop that
// SPIRE adds.
func BenchmarkAttest(b *testing.B) {
	keys := newTestKeys(b)
	manifest := []byte(goodManifest)
	hcl := `signing_keys { "release-ed25519" = "` + keys.ed25519File + `" "release-p256" = "` + keys.p256File + `" }`
	for _, bc := range []struct {
		name  string
		sig   []byte
		files bool
		want  int
	}{
		{"signed-ed25519", sign(b, "release-ed25519", keys.ed25519, manifest), true, 8},
		{"signed-p256", sign(b, "release-p256", keys.p256, manifest), true, 8},
		{"unsigned", nil, true, 7},
		{"no-manifest", nil, false, 0},
	} {
		b.Run(bc.name, func(b *testing.B) {
			dir := b.TempDir()
			path := dir + "/manifest.json"
			if bc.files {
				writeFile(b, dir, "manifest.json", manifest)
			}
			if bc.sig != nil {
				writeFile(b, dir, "manifest.json.sig", bc.sig)
			}
			p := New()
			p.SetLogger(hclog.NewNullLogger())
			if _, err := p.Configure(context.Background(), &configv1.ConfigureRequest{HclConfiguration: hcl}); err != nil {
				b.Fatal(err)
			}
			c := startChild(b, ManifestEnv+"="+path)
			req := &workloadattestorv1.AttestRequest{Pid: c.pid}
			resp, err := p.Attest(context.Background(), req) // warms the digest cache
			if err != nil || len(resp.GetSelectorValues()) != bc.want {
				b.Fatalf("warm-up: %q, %v", resp.GetSelectorValues(), err)
			}
			want := slices.Clone(resp.GetSelectorValues())
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				resp, err := p.Attest(context.Background(), req)
				if err != nil || len(resp.GetSelectorValues()) != len(want) {
					b.Fatalf("Attest: %q, %v", resp.GetSelectorValues(), err)
				}
			}
		})
	}
}
