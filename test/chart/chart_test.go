package chart

import (
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/agentid/agentid/pkg/policy"
	"github.com/agentid/agentid/pkg/server/config"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

// The releases the tests render: the default values and every example
// values file, each in the namespace its README installs it in.
var releases = []release{
	{name: "agentid", namespace: "spire"},
	{name: "agentid", namespace: "spire", values: []string{filepath.Join(examples, "all-in-one", "values.yaml")}},
	{name: "agentid", namespace: "spire-server", values: []string{filepath.Join(examples, "existing-spire", "agentid-values.yaml")}},
	{name: "agentid", namespace: "agentid", values: []string{filepath.Join(examples, "mesh", "values.yaml")}},
	{name: "agentid", namespace: "agentid", values: []string{filepath.Join(examples, "kagent", "values.yaml")}},
}

func (r release) String() string {
	if len(r.values) == 0 {
		return "default"
	}
	rel, _ := filepath.Rel(examples, r.values[0])
	return rel
}

func releaseFor(t testing.TB, example string) release {
	t.Helper()
	for _, r := range releases {
		if r.String() == example {
			return r
		}
	}
	t.Fatalf("no release %s", example)
	return release{}
}

func TestLint(t *testing.T) {
	for _, r := range releases {
		t.Run(r.String(), func(t *testing.T) {
			t.Parallel()
			if out, err := runHelm(t, r.args("lint")...); err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
		})
	}
}

// Every rendered manifest decodes strictly (render fails the test otherwise)
// and every pod meets the hardening, spire-agent's exception being exactly
// the documented one.
func TestRenderedPodsAreHardened(t *testing.T) {
	for _, r := range releases {
		t.Run(r.String(), func(t *testing.T) {
			t.Parallel()
			m := render(t, r)
			specs := m.podSpecs()
			// In mode existingSpire the SPIRE release runs the pods
			// (TestExistingSpireValues checks its containers).
			if len(specs) == 0 && mergedValues(t, r)["mode"] != "existingSpire" {
				t.Fatal("no workloads rendered")
			}
			for name, spec := range specs {
				exception := name == "DaemonSet/agentid-spire-agent"
				for _, p := range podSecurityProblems(spec, exception) {
					t.Errorf("%s: %s", name, p)
				}
			}
		})
	}
}

// The security check itself catches each kind of departure.
func TestPodSecurityProblems(t *testing.T) {
	m := render(t, releaseFor(t, "default"))
	base := m.podSpecs()["StatefulSet/agentid-spire-server"]
	if p := podSecurityProblems(base, false); len(p) != 0 {
		t.Fatalf("baseline has problems: %v", p)
	}
	tests := []struct {
		name   string
		change func(*corev1.PodSpec)
		want   string
	}{
		{"root", func(s *corev1.PodSpec) { zero := int64(0); s.Containers[0].SecurityContext.RunAsUser = &zero }, "spire-server: may run as root"},
		{"writable root", func(s *corev1.PodSpec) { f := false; s.Containers[1].SecurityContext.ReadOnlyRootFilesystem = &f }, "agentid-server: root filesystem is not read-only"},
		{"escalation", func(s *corev1.PodSpec) { s.InitContainers[0].SecurityContext.AllowPrivilegeEscalation = nil }, "install-composer: allowPrivilegeEscalation is not false"},
		{"capability", func(s *corev1.PodSpec) {
			s.Containers[0].SecurityContext.Capabilities.Add = []corev1.Capability{"NET_ADMIN"}
		}, "spire-server: adds capabilities [NET_ADMIN]"},
		{"no seccomp", func(s *corev1.PodSpec) {
			s.SecurityContext.SeccompProfile = nil
			s.Containers[1].SecurityContext.SeccompProfile = nil
		}, "agentid-server: seccomp profile is not RuntimeDefault"},
		{"host pid", func(s *corev1.PodSpec) { s.HostPID = true }, "hostPID is true"},
		{"host path", func(s *corev1.PodSpec) {
			s.Volumes = append(s.Volumes, corev1.Volume{Name: "host", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/"}}})
		}, "hostPath volume host"},
		{"no memory limit", func(s *corev1.PodSpec) { delete(s.Containers[1].Resources.Limits, corev1.ResourceMemory) }, "agentid-server: memory request or limit missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := render(t, releaseFor(t, "default")).podSpecs()["StatefulSet/agentid-spire-server"]
			tt.change(spec)
			if p := podSecurityProblems(spec, false); !slices.Contains(p, tt.want) {
				t.Errorf("problems %q, want %q", p, tt.want)
			}
		})
	}
}

// Bad values are refused: by the schema, or by the chart's own checks for
// what the schema cannot say.
func TestBadValuesAreRejected(t *testing.T) {
	tests := []struct {
		file string
		want string
	}{
		{"unknown-key.yaml", "additional properties 'colour' not allowed"},
		{"unknown-nested-key.yaml", "additional properties 'logLevl' not allowed"},
		{"bad-mode.yaml", "at '/mode': value must be one of 'allInOne', 'existingSpire'"},
		{"bad-trust-domain.yaml", "at '/trustDomain': 'Example.ORG' does not match pattern"},
		{"agent-without-selectors.yaml", "at '/server/agents/0': missing property 'selectors'"},
		{"agent-bad-scope.yaml", "at '/server/agents/0/scopeCeiling/0': 'campaigns read' does not match pattern"},
		{"agent-bad-name.yaml", "at '/server/agents/0/name': 'Market_Analysis' does not match pattern"},
		{"bad-duration.yaml", "at '/plugins/composer/maxStaleness': '30 seconds' does not match pattern"},
		{"bad-checksum.yaml", "at '/plugins/composer/checksum': 'abc' does not match pattern"},
		{"bad-arch.yaml", "at '/plugins/arch': value must be one of 'amd64', 'arm64'"},
		{"http-issuer.yaml", "at '/server/oidc/issuers/0/url': 'http://idp.example.com' does not match pattern"},
		{"rule-without-scopes.yaml", "at '/server/policy/rules/0': missing property 'scopes'"},
		{"no-rules.yaml", "at '/server/policy/rules': minItems: got 0, want 1"},
		{"bad-port.yaml", "at '/server/grpcPort': maximum: got 70,000, want 65,535"},
		{"signing-key-not-pem.yaml", "at '/plugins/attestor/signingKeys/release': 'not a key' does not match pattern"},
		{"bad-spiffe-id.yaml", "at '/server/access/verifiers/0': 'https://example.org/svc' does not match pattern"},
		{"extauthz-without-rules.yaml", "extauthz.rules: at least one rule is required when extauthz.enabled"},
		{"extauthz-plaintext.yaml", "extauthz.tls: set tls.clientIDs or tls.clientTrustDomains (mTLS), or istioSidecar: true"},
		{"extauthz-tls-and-sidecar.yaml", "extauthz.tls and extauthz.istioSidecar exclude each other"},
		{"existing-spire-with-oidc.yaml", "oidcDiscovery.enabled: only in mode allInOne"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			t.Parallel()
			r := release{name: "agentid", namespace: "spire", values: []string{filepath.Join("testdata", "bad", tt.file)}}
			_, err := runHelm(t, r.args("template")...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
	// Every file of testdata/bad is in the table.
	files, _ := filepath.Glob(filepath.Join("testdata", "bad", "*.yaml"))
	if len(files) != len(tests) {
		t.Errorf("%d files in testdata/bad, %d in the table", len(files), len(tests))
	}
}

// Strict mode fails on each placeholder a production install must replace.
func TestStrictMode(t *testing.T) {
	tests := []struct {
		name   string
		values string // put back over testdata/strict.yaml
		want   string
	}{
		{"trust domain", "trustDomain: example.org", "strict: trustDomain is the example trust domain example.org"},
		{"cluster", "clusterName: example-cluster", "strict: clusterName is the example example-cluster"},
		{"issuer", "server: {oidc: {issuers: [{url: 'https://idp.example.com', audiences: [agentid]}]}}", "strict: server.oidc.issuers has the example issuer"},
		{"ca subject", "spireServer: {caSubject: {commonName: example.org}}", "strict: spireServer.caSubject.commonName is the example"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			placeholder := filepath.Join(t.TempDir(), "placeholder.yaml")
			if err := os.WriteFile(placeholder, []byte(tt.values+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			r := release{name: "agentid", namespace: "spire", values: []string{filepath.Join("testdata", "strict.yaml"), placeholder}}
			_, err := runHelm(t, r.args("template")...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
	t.Run("all set", func(t *testing.T) {
		t.Parallel()
		render(t, release{name: "agentid", namespace: "spire", values: []string{filepath.Join("testdata", "strict.yaml")}})
	})
}

// agentid-server's configuration, rendered from values, is what the server
// accepts at start-up (config.Parse, then policy.Compile), and its agents
// are the declared ones with the chart's defaults filled in.
func TestServerConfigFromValues(t *testing.T) {
	for _, r := range releases {
		t.Run(r.String(), func(t *testing.T) {
			t.Parallel()
			m := render(t, r)
			cfg := serverConfig(t, m)
			values := mergedValues(t, r)

			td := dig(t, values, "trustDomain").(string)
			if cfg.TrustDomain.Name() != td {
				t.Errorf("trust domain %s, want %s", cfg.TrustDomain, td)
			}
			if cfg.SelectorType != dig(t, values, "plugins", "attestor", "name") {
				t.Errorf("selector type %s is not the attestor's name", cfg.SelectorType)
			}
			declared, _ := dig(t, values, "server", "agents").([]any)
			if len(cfg.Agents) != len(declared) {
				t.Fatalf("%d agents in the config, %d declared", len(cfg.Agents), len(declared))
			}
			defaults := dig(t, values, "server", "agentDefaults").(map[string]any)
			nodeAlias := "spiffe://" + td + "/k8s-cluster/" + dig(t, values, "clusterName").(string) + "/nodes"
			for i, d := range declared {
				a := d.(map[string]any)
				got := cfg.Agents[i]
				want := struct{ id, parent, x509, jwt string }{
					id:     or(a["spiffeID"], "spiffe://"+td+"/agent/"+a["name"].(string)),
					parent: or(a["parentID"], or(defaults["parentID"], nodeAlias)),
					x509:   or(a["x509SVIDTTL"], defaults["x509SVIDTTL"].(string)),
					jwt:    or(a["jwtSVIDTTL"], defaults["jwtSVIDTTL"].(string)),
				}
				if got.Name != a["name"] || got.SPIFFEID.String() != want.id || got.ParentID.String() != want.parent {
					t.Errorf("agent %d: %s %s parent %s, want %s %s parent %s", i, got.Name, got.SPIFFEID, got.ParentID, a["name"], want.id, want.parent)
				}
				if got.X509SVIDTTL != duration(t, want.x509) || got.JWTSVIDTTL != duration(t, want.jwt) {
					t.Errorf("agent %s: ttls %s %s, want %s %s", got.Name, got.X509SVIDTTL, got.JWTSVIDTTL, want.x509, want.jwt)
				}
				var sels []string
				for _, s := range got.Selectors {
					sels = append(sels, s.Type+":"+s.Value)
				}
				if !slices.Equal(sels, stringList(a["selectors"])) {
					t.Errorf("agent %s: selectors %v, want %v", got.Name, sels, a["selectors"])
				}
				ceiling := stringList(a["scopeCeiling"])
				slices.Sort(ceiling)
				gotCeiling := got.ScopeCeiling.Strings()
				if !slices.Equal(gotCeiling, ceiling) {
					t.Errorf("agent %s: ceiling %v, want %v", got.Name, gotCeiling, ceiling)
				}
				var subs []string
				for _, s := range got.SubAgents {
					subs = append(subs, s.String())
				}
				if !slices.Equal(subs, stringList(a["subAgents"])) {
					t.Errorf("agent %s: sub-agents %v, want %v", got.Name, subs, a["subAgents"])
				}
			}
		})
	}
}

// serverConfig parses agentid-server's rendered configuration as the server
// does at start-up.
func serverConfig(t testing.TB, m *manifests) *config.Config {
	t.Helper()
	cm := get[*corev1.ConfigMap](t, m, "ConfigMap", "agentid-server")
	cfg, err := config.Parse([]byte(cm.Data["server.yaml"]))
	if err != nil {
		t.Fatalf("agentid-server refuses its configuration: %v\n%s", err, cm.Data["server.yaml"])
	}
	rules := make([]policy.Rule, len(cfg.Rules))
	for i, r := range cfg.Rules {
		rules[i] = policy.Rule{Name: r.Name, When: r.When, Scopes: r.Scopes, MaxTTL: r.MaxTTL, MaxDepth: r.MaxDepth, Callers: r.Callers}
	}
	if _, err := policy.Compile(rules); err != nil {
		t.Fatalf("agentid-server refuses its policy: %v", err)
	}
	return cfg
}

// In mode allInOne, SPIRE and agentid agree on the composer's binary,
// checksum and socket, on the admin socket, and on the attestor.
func TestAllInOneWiring(t *testing.T) {
	for _, name := range []string{"default", "all-in-one/values.yaml", "mesh/values.yaml"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			r := releaseFor(t, name)
			m := render(t, r)
			cfg := serverConfig(t, m)
			values := mergedValues(t, r)
			arch := dig(t, values, "plugins", "arch").(string)
			sums := pinnedChecksums(t)[arch]

			sts := get[*appsv1.StatefulSet](t, m, "StatefulSet", "agentid-spire-server")
			if sts.Spec.Replicas == nil || *sts.Spec.Replicas != 1 {
				t.Error("spire-server and agentid-server must run one replica")
			}
			if sts.Spec.Template.Spec.NodeSelector["kubernetes.io/arch"] != arch {
				t.Errorf("spire-server is not pinned to %s, the checksum's architecture", arch)
			}
			pod := &sts.Spec.Template.Spec
			spire := container(t, pod, "spire-server")
			agentid := container(t, pod, "agentid-server")
			serverConf := parseSPIREConfig(t, get[*corev1.ConfigMap](t, m, "ConfigMap", "agentid-spire-server").Data["server.conf"])

			// The composer: pinned checksum, copied where SPIRE runs it from.
			comp := serverConf.plugin(t, "CredentialComposer", dig(t, values, "plugins", "composer", "name").(string))
			if comp.PluginChecksum != sums["agentid-composer"] {
				t.Errorf("composer checksum %s, pinned %s", comp.PluginChecksum, sums["agentid-composer"])
			}
			checkPluginDelivery(t, pod, "install-composer", spire, comp.PluginCmd)
			data := comp.data(t)
			validatePlugin(t, "composer", cfg.TrustDomain.Name(), data)
			sock, _ := hclMap(t, data)["agentid_socket_path"].(string)
			if sock != cfg.LocalSocket {
				t.Errorf("composer dials %s, agentid-server listens on %s", sock, cfg.LocalSocket)
			}
			checkShared(t, spire, agentid, path.Dir(cfg.LocalSocket), pod)
			// The admin socket.
			if serverConf.Server.SocketPath != cfg.AdminSocket {
				t.Errorf("spire-server's admin socket %s, agentid-server dials %s", serverConf.Server.SocketPath, cfg.AdminSocket)
			}
			checkShared(t, spire, agentid, path.Dir(cfg.AdminSocket), pod)
			// The store on its claim.
			if v := volumeFor(agentid, path.Dir(cfg.StorePath)); !slices.ContainsFunc(sts.Spec.VolumeClaimTemplates, func(c corev1.PersistentVolumeClaim) bool { return c.Name == v }) {
				t.Errorf("agentid-server's store %s is not on a claim", cfg.StorePath)
			}
			if serverConf.Server.TrustDomain != cfg.TrustDomain.Name() {
				t.Errorf("trust domains differ: %s, %s", serverConf.Server.TrustDomain, cfg.TrustDomain)
			}

			// The attestor.
			ds := get[*appsv1.DaemonSet](t, m, "DaemonSet", "agentid-spire-agent")
			agentPod := &ds.Spec.Template.Spec
			agentConf := parseSPIREConfig(t, get[*corev1.ConfigMap](t, m, "ConfigMap", "agentid-spire-agent").Data["agent.conf"])
			att := agentConf.plugin(t, "WorkloadAttestor", cfg.SelectorType)
			if att.PluginChecksum != sums["agentid-attestor"] {
				t.Errorf("attestor checksum %s, pinned %s", att.PluginChecksum, sums["agentid-attestor"])
			}
			agentContainer := container(t, agentPod, "spire-agent")
			checkPluginDelivery(t, agentPod, "install-attestor", agentContainer, att.PluginCmd)
			validatePlugin(t, "attestor", cfg.TrustDomain.Name(), signingKeysFromConfigMap(t, m, agentPod, agentContainer, att.data(t)))
			// The agent reaches the server through its Service.
			svc := get[*corev1.Service](t, m, "Service", "agentid-spire-server")
			if want := svc.Name + "." + r.namespace + ".svc"; agentConf.Agent.ServerAddress != want || agentConf.Agent.ServerPort != "8081" {
				t.Errorf("agent dials %s:%s, want %s:8081", agentConf.Agent.ServerAddress, agentConf.Agent.ServerPort, want)
			}

			// The discovery provider announces spire-server's issuer and
			// reads the keys from the node's spire-agent Workload API, which
			// lets it in without an entry; it has no way to the admin socket.
			if cm, ok := find[*corev1.ConfigMap](m, "ConfigMap", "agentid-oidc-discovery"); ok {
				odp := hclMap(t, cm.Data["oidc-discovery-provider.conf"])
				if odp["jwt_issuer"] != serverConf.Server.JWTIssuer || serverConf.Server.JWTIssuer == "" {
					t.Errorf("issuers differ: discovery %v, server %q", odp["jwt_issuer"], serverConf.Server.JWTIssuer)
				}
				if _, ok := odp["server_api"]; ok {
					t.Error("discovery provider configured with server_api (the admin socket)")
				}
				api := odp["workload_api"].([]map[string]any)[0]
				if api["socket_path"] != agentConf.Agent.SocketPath || api["trust_domain"] != cfg.TrustDomain.Name() {
					t.Errorf("discovery provider reads %v, spire-agent serves %s", api, agentConf.Agent.SocketPath)
				}
				if !agentConf.Agent.AllowUnauthenticatedVerifiers {
					t.Error("spire-agent refuses unregistered callers the JWT bundles: the discovery provider has no entry")
				}
				for _, c := range pod.Containers {
					if c.Name == "oidc-discovery-provider" {
						t.Error("discovery provider in the spire-server pod")
					}
				}
				dep := get[*appsv1.Deployment](t, m, "Deployment", "agentid-oidc-discovery")
				odpPod := &dep.Spec.Template.Spec
				odpContainer := container(t, odpPod, "oidc-discovery-provider")
				if v := volumeFor(odpContainer, path.Dir(agentConf.Agent.SocketPath)); v != "spire-agent-socket" || !mountedReadOnly(odpPod, v) {
					t.Errorf("discovery provider mounts %q at the agent socket's directory", v)
				}
				if v := volumeFor(odpContainer, path.Dir(cfg.AdminSocket)); v != "" {
					t.Errorf("discovery provider mounts %s at the admin socket's directory", v)
				}
				svc := get[*corev1.Service](t, m, "Service", "agentid-oidc-discovery")
				if !reflect.DeepEqual(svc.Spec.Selector, dep.Spec.Selector.MatchLabels) {
					t.Errorf("discovery Service selects %v, its pods carry %v", svc.Spec.Selector, dep.Spec.Selector.MatchLabels)
				}
			} else if agentConf.Agent.AllowUnauthenticatedVerifiers {
				t.Error("spire-agent serves unregistered callers without the discovery provider")
			}
		})
	}
}

// checkPluginDelivery checks that the init container copies the plugin to
// cmd through a volume that the SPIRE container mounts at the same place.
func checkPluginDelivery(t testing.TB, pod *corev1.PodSpec, initName string, spire *corev1.Container, cmd string) {
	t.Helper()
	init := container(t, pod, initName)
	if len(init.Command) == 0 || init.Command[len(init.Command)-1] != cmd {
		t.Errorf("%s copies to %v, SPIRE runs %s", initName, init.Command, cmd)
	}
	dir := path.Dir(cmd)
	v := volumeFor(init, dir)
	if v == "" || volumeFor(spire, dir) != v {
		t.Errorf("%s and %s do not share %s", initName, spire.Name, dir)
	}
}

// checkShared checks that a and b mount the same in-pod volume at dir.
func checkShared(t testing.TB, a, b *corev1.Container, dir string, pod *corev1.PodSpec) {
	t.Helper()
	va, vb := volumeFor(a, dir), volumeFor(b, dir)
	if va == "" || va != vb {
		t.Errorf("%s (%q) and %s (%q) do not share a volume at %s", a.Name, va, b.Name, vb, dir)
		return
	}
	i := slices.IndexFunc(pod.Volumes, func(v corev1.Volume) bool { return v.Name == va })
	if i < 0 || pod.Volumes[i].EmptyDir == nil {
		t.Errorf("volume %s at %s is not an in-pod emptyDir", va, dir)
	}
}

// signingKeysFromConfigMap writes the signing keys ConfigMap mounted into
// spire-agent to a test directory and points plugin_data at it, so the
// attestor's Validate loads the very keys the pod would.
func signingKeysFromConfigMap(t testing.TB, m *manifests, pod *corev1.PodSpec, c *corev1.Container, data string) string {
	t.Helper()
	const dir = "/etc/agentid/signing-keys"
	if !strings.Contains(data, dir) {
		return data
	}
	vol := volumeFor(c, dir)
	var cmName string
	for _, v := range pod.Volumes {
		if v.Name == vol && v.ConfigMap != nil {
			cmName = v.ConfigMap.Name
		}
	}
	if cmName == "" {
		t.Fatalf("signing keys %s are not mounted from a ConfigMap", dir)
	}
	tmp := t.TempDir()
	for name, pem := range get[*corev1.ConfigMap](t, m, "ConfigMap", cmName).Data {
		if err := os.WriteFile(filepath.Join(tmp, name), []byte(pem), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return replacePrefix(data, dir, tmp)
}

// The pinned checksums are those of a fresh reproducible build of the
// plugins, so they are those of the binaries in the images.
func TestPluginChecksumsMatchBuild(t *testing.T) {
	cmd := exec.Command(filepath.Join(root, "charts", "images", "checksums.sh"), "check")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
}

// find is get without failing.
func find[T any](m *manifests, kind, name string) (T, bool) {
	for _, o := range m.objects {
		if o.kind == kind && o.name == name {
			v, ok := o.obj.(T)
			return v, ok
		}
	}
	var zero T
	return zero, false
}

func or(v any, def string) string {
	if s, ok := v.(string); ok && s != "" {
		return s
	}
	return def
}

func stringList(v any) []string {
	list, _ := v.([]any)
	out := make([]string, 0, len(list))
	for _, x := range list {
		out = append(out, x.(string))
	}
	return out
}

func duration(t testing.TB, s string) time.Duration {
	t.Helper()
	d, err := time.ParseDuration(s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// mergedValues is the chart's values.yaml with the release's values files
// merged over it as Helm merges them (maps key by key, anything else
// replaced).
func mergedValues(t testing.TB, r release) map[string]any {
	t.Helper()
	v := readYAML(t, filepath.Join(chartDir, "values.yaml"))
	for _, f := range r.values {
		v = merge(v, readYAML(t, f))
	}
	return v
}

func merge(dst, src map[string]any) map[string]any {
	for k, sv := range src {
		if sm, ok := sv.(map[string]any); ok {
			if dm, ok := dst[k].(map[string]any); ok {
				dst[k] = merge(dm, sm)
				continue
			}
		}
		dst[k] = sv
	}
	return dst
}
