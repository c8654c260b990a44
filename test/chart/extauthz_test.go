package chart

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// meshWith renders the mesh example with extra values put over it.
func meshWith(t *testing.T, extra string) *manifests {
	t.Helper()
	r := releaseFor(t, "mesh/values.yaml")
	if extra != "" {
		path := filepath.Join(t.TempDir(), "extra.yaml")
		if err := os.WriteFile(path, []byte(extra), 0o600); err != nil {
			t.Fatal(err)
		}
		r.values = append(append([]string(nil), r.values...), path)
	}
	return render(t, r)
}

func tcp(port string) networkingv1.NetworkPolicyPort {
	p, proto := intstr.FromString(port), corev1.ProtocolTCP
	return networkingv1.NetworkPolicyPort{Port: &p, Protocol: &proto}
}

func namespaceNamed(labels map[string]string) networkingv1.NetworkPolicyPeer {
	return networkingv1.NetworkPolicyPeer{NamespaceSelector: &metav1.LabelSelector{MatchLabels: labels}}
}

// The ext_authz port admits only the mesh's namespaces (or the peers the
// values name); the admin port the scrapers.
func TestExtauthzNetworkPolicy(t *testing.T) {
	tests := []struct {
		name  string
		extra string
		from  []networkingv1.NetworkPolicyPeer
	}{
		{"default", "", []networkingv1.NetworkPolicyPeer{
			namespaceNamed(map[string]string{"kubernetes.io/metadata.name": "istio-system"}),
			namespaceNamed(map[string]string{"istio-injection": "enabled"}),
		}},
		{"custom", "networkPolicy:\n  extauthzFrom:\n    - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: gateways}}\n",
			[]networkingv1.NetworkPolicyPeer{namespaceNamed(map[string]string{"kubernetes.io/metadata.name": "gateways"})}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			np := get[*networkingv1.NetworkPolicy](t, meshWith(t, tt.extra), "NetworkPolicy", "agentid-extauthz")
			in := np.Spec.Ingress
			if len(in) != 2 {
				t.Fatalf("%d ingress rules, want 2", len(in))
			}
			if !reflect.DeepEqual(in[0].Ports, []networkingv1.NetworkPolicyPort{tcp("grpc")}) || !reflect.DeepEqual(in[0].From, tt.from) {
				t.Errorf("ext_authz rule: ports %v from %v, want grpc from %v", in[0].Ports, in[0].From, tt.from)
			}
			if !reflect.DeepEqual(in[1].Ports, []networkingv1.NetworkPolicyPort{tcp("admin")}) {
				t.Errorf("admin rule: ports %v", in[1].Ports)
			}
		})
	}
}

// With istioSidecar the pods are injected and the sidecar accepts only
// STRICT mTLS; with tls the server's own listener is mTLS for the named
// clients and no PeerAuthentication is rendered.
func TestExtauthzMTLS(t *testing.T) {
	t.Parallel()
	m := meshWith(t, "")
	dep := get[*appsv1.Deployment](t, m, "Deployment", "agentid-extauthz")
	pa := get[*peerAuthentication](t, m, "PeerAuthentication", "agentid-extauthz")
	if pa.Spec.MTLS.Mode != "STRICT" || !reflect.DeepEqual(pa.Spec.Selector.MatchLabels, dep.Spec.Selector.MatchLabels) {
		t.Errorf("PeerAuthentication %+v, pods %v", pa.Spec, dep.Spec.Selector.MatchLabels)
	}
	if dep.Spec.Template.Labels["sidecar.istio.io/inject"] != "true" {
		t.Errorf("pods not labelled for injection: %v", dep.Spec.Template.Labels)
	}

	m = meshWith(t, "extauthz:\n  istioSidecar: false\n  tls:\n    clientIDs: [spiffe://example.org/ns/istio-system/sa/istio-ingressgateway]\n    clientTrustDomains: [example.org]\n")
	if _, ok := find[*peerAuthentication](m, "PeerAuthentication", "agentid-extauthz"); ok {
		t.Error("PeerAuthentication rendered with tls")
	}
	var cfg struct {
		TLS struct {
			ClientIDs          []string `yaml:"client_ids"`
			ClientTrustDomains []string `yaml:"client_trust_domains"`
		} `yaml:"tls"`
	}
	unmarshal(t, get[*corev1.ConfigMap](t, m, "ConfigMap", "agentid-extauthz").Data["extauthz.yaml"], &cfg)
	if !reflect.DeepEqual(cfg.TLS.ClientIDs, []string{"spiffe://example.org/ns/istio-system/sa/istio-ingressgateway"}) ||
		!reflect.DeepEqual(cfg.TLS.ClientTrustDomains, []string{"example.org"}) {
		t.Errorf("tls config %+v", cfg.TLS)
	}
}

// A PodDisruptionBudget of minAvailable 1 only where another replica can
// take over: with one replica it would block every drain.
func TestExtauthzPDB(t *testing.T) {
	for replicas, want := range map[string]bool{"1": false, "2": true} {
		t.Run(replicas, func(t *testing.T) {
			t.Parallel()
			pdb, ok := find[*policyv1.PodDisruptionBudget](meshWith(t, "extauthz: {replicas: "+replicas+"}\n"), "PodDisruptionBudget", "agentid-extauthz")
			if ok != want {
				t.Fatalf("PDB rendered %v with %s replicas", ok, replicas)
			}
			if ok && pdb.Spec.MinAvailable.IntValue() != 1 {
				t.Errorf("minAvailable %v", pdb.Spec.MinAvailable)
			}
		})
	}
}

// The pods' checksum is the rendered configuration's: a change outside
// .Values.extauthz that changes the file (here the trust domain) restarts
// them too.
func TestExtauthzConfigChecksum(t *testing.T) {
	checksum := func(m *manifests) (got, want string) {
		data := get[*corev1.ConfigMap](t, m, "ConfigMap", "agentid-extauthz").Data["extauthz.yaml"]
		sum := sha256.Sum256([]byte(strings.TrimSuffix(data, "\n")))
		dep := get[*appsv1.Deployment](t, m, "Deployment", "agentid-extauthz")
		return dep.Spec.Template.Annotations["checksum/config"], hex.EncodeToString(sum[:])
	}
	before, want := checksum(meshWith(t, ""))
	if before != want {
		t.Fatalf("checksum %s, the ConfigMap's is %s", before, want)
	}
	after, want := checksum(meshWith(t, "trustDomain: other.example\n"))
	if after != want || after == before {
		t.Fatalf("checksum %s after a trust domain change (ConfigMap %s, before %s)", after, want, before)
	}
}
