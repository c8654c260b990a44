package chart

import (
	"fmt"
	"net"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/agentid/agentid/pkg/agent"
	"github.com/agentid/agentid/pkg/plugin/workloadattestor/aiagent"
	"github.com/agentid/agentid/pkg/sidecar"
	"github.com/agentid/agentid/pkg/verify"
	"github.com/agentid/agentid/pkg/verify/extauthz"
	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"gopkg.in/yaml.v3"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

// The values for the hardened SPIRE charts agree with the agentid release
// they go with: the checksums pinned, the plugin binaries copied where SPIRE
// runs them, the sockets and volumes agentid-server's configuration names,
// the ConfigMap and claim that release renders; the plugins accept their
// plugin_data; and the containers added to SPIRE's pods are hardened.
func TestExistingSpireValues(t *testing.T) {
	r := releaseFor(t, "existing-spire/agentid-values.yaml")
	m := render(t, r)
	cfg := serverConfig(t, m)
	spire := readYAML(t, filepath.Join(examples, "existing-spire", "spire-values.yaml"))
	sums := pinnedChecksums(t)["amd64"]

	if td := dig(t, spire, "global", "spire", "trustDomain"); td != cfg.TrustDomain.Name() {
		t.Errorf("SPIRE trust domain %v, agentid %s", td, cfg.TrustDomain)
	}
	server := dig(t, spire, "spire-server").(map[string]any)
	agent := dig(t, spire, "spire-agent").(map[string]any)
	for _, side := range []map[string]any{server, agent} {
		if arch := dig(t, side, "nodeSelector", "kubernetes.io/arch"); arch != "amd64" {
			t.Errorf("pods pinned to %v, checksums are amd64", arch)
		}
	}

	// The node alias the agents hang from is a static entry there.
	alias := dig(t, server, "controllerManager", "identities", "clusterStaticEntries", "agentid-nodes").(map[string]any)
	for _, a := range cfg.Agents {
		if a.ParentID.String() != alias["spiffeID"] {
			t.Errorf("agent %s hangs from %s, the static node alias is %v", a.Name, a.ParentID, alias["spiffeID"])
		}
	}
	if dig(t, server, "controllerManager", "entryIDPrefixCleanup") != false {
		t.Error("the controller manager would delete agentid's entries")
	}

	// The pod spec the hardened chart builds from these values, in the
	// parts agentid adds.
	pod := &corev1.PodSpec{}
	for key, into := range map[string]any{"initContainers": &pod.InitContainers, "extraContainers": &pod.Containers, "extraVolumes": &pod.Volumes} {
		if err := decodeStrict(server[key], into); err != nil {
			t.Fatalf("spire-server.%s: %v", key, err)
		}
	}
	var spireMounts []corev1.VolumeMount
	if err := decodeStrict(server["extraVolumeMounts"], &spireMounts); err != nil {
		t.Fatal(err)
	}
	spireContainer := &corev1.Container{Name: "spire-server", VolumeMounts: append(spireMounts,
		corev1.VolumeMount{Name: "spire-server-socket", MountPath: "/tmp/spire-server/private"})}
	pod.Volumes = append(pod.Volumes, corev1.Volume{Name: "spire-server-socket", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}})
	for _, p := range podSecurityProblems(pod, false) {
		t.Errorf("spire-server pod additions: %s", p)
	}
	agentid := container(t, pod, "agentid-server")

	comp := dig(t, server, "customPlugins", "credentialComposer", "agentid").(map[string]any)
	checkHardenedPluginKeys(t, comp)
	if comp["plugin_checksum"] != sums["agentid-composer"] {
		t.Errorf("composer checksum %v, pinned %s", comp["plugin_checksum"], sums["agentid-composer"])
	}
	checkPluginDelivery(t, pod, "install-composer", spireContainer, comp["plugin_cmd"].(string))
	data := jsonPluginData(t, comp["plugin_data"])
	validatePlugin(t, "composer", cfg.TrustDomain.Name(), data)
	if sock := dig(t, comp, "plugin_data", "agentid_socket_path"); sock != cfg.LocalSocket {
		t.Errorf("composer dials %v, agentid-server listens on %s", sock, cfg.LocalSocket)
	}
	checkShared(t, spireContainer, agentid, path.Dir(cfg.LocalSocket), pod)
	checkShared(t, spireContainer, agentid, path.Dir(cfg.AdminSocket), pod)
	if cfg.AdminSocket != "/tmp/spire-server/private/api.sock" {
		t.Errorf("agentid-server dials %s, not the hardened chart's admin socket", cfg.AdminSocket)
	}

	// agentid-server's configuration and store are this release's.
	configVolume := volumeFor(agentid, "/etc/agentid")
	storeVolume := volumeFor(agentid, path.Dir(cfg.StorePath))
	for _, v := range pod.Volumes {
		switch {
		case v.Name == configVolume && (v.ConfigMap == nil || v.ConfigMap.Name != "agentid-server"):
			t.Errorf("agentid-server's configuration volume %s is not the release's ConfigMap", v.Name)
		case v.Name == storeVolume:
			if v.PersistentVolumeClaim == nil {
				t.Fatalf("the store %s is not on a claim", cfg.StorePath)
			}
			get[*corev1.PersistentVolumeClaim](t, m, "PersistentVolumeClaim", v.PersistentVolumeClaim.ClaimName)
		}
	}
	if !slices.Equal(agentid.Args, []string{"-config", "/etc/agentid/server.yaml"}) {
		t.Errorf("agentid-server args %v", agentid.Args)
	}
	svc := get[*corev1.Service](t, m, "Service", "agentid-server")
	labels := dig(t, mergedValues(t, r), "existingSpire", "serverPodLabels").(map[string]any)
	for k, v := range labels {
		if svc.Spec.Selector[k] != v {
			t.Errorf("Service selects %v, the SPIRE release's pods carry %s=%v", svc.Spec.Selector, k, v)
		}
	}

	// The attestor.
	att := dig(t, agent, "customPlugins", "workloadAttestor", cfg.SelectorType).(map[string]any)
	checkHardenedPluginKeys(t, att)
	if att["plugin_checksum"] != sums["agentid-attestor"] {
		t.Errorf("attestor checksum %v, pinned %s", att["plugin_checksum"], sums["agentid-attestor"])
	}
	agentPod := &corev1.PodSpec{HostPID: true}
	if err := decodeStrict(agent["initContainers"], &agentPod.InitContainers); err != nil {
		t.Fatal(err)
	}
	if err := decodeStrict(agent["extraVolumes"], &agentPod.Volumes); err != nil {
		t.Fatal(err)
	}
	agentContainer := corev1.Container{Name: "spire-agent"}
	if err := decodeStrict(agent["extraVolumeMounts"], &agentContainer.VolumeMounts); err != nil {
		t.Fatal(err)
	}
	if err := decodeStrict(agent["securityContext"], &agentContainer.SecurityContext); err != nil {
		t.Fatal(err)
	}
	agentContainer.Resources = agentPod.InitContainers[0].Resources // the hardened chart's own
	agentPod.Containers = []corev1.Container{agentContainer}
	for _, p := range podSecurityProblems(agentPod, true) {
		t.Errorf("spire-agent pod additions: %s", p)
	}
	checkPluginDelivery(t, agentPod, "install-attestor", &agentPod.Containers[0], att["plugin_cmd"].(string))
	// The signing keys come from a ConfigMap the operator creates in the
	// agents' namespace; validate with a real key in its place.
	keys := filepath.Join(t.TempDir())
	writeKey(t, filepath.Join(keys, "release-2026.pem"))
	validatePlugin(t, "attestor", cfg.TrustDomain.Name(), replacePrefix(jsonPluginData(t, att["plugin_data"]), "/etc/agentid/signing-keys", keys))
	if volumeFor(&agentPod.Containers[0], "/etc/agentid/signing-keys") == "" {
		t.Error("the signing keys are not mounted into spire-agent")
	}
}

// checkHardenedPluginKeys applies the hardened charts' rule for custom
// plugins: plugin_cmd and plugin_checksum required, nothing but those and
// plugin_data.
func checkHardenedPluginKeys(t testing.TB, p map[string]any) {
	t.Helper()
	for k := range p {
		if !slices.Contains([]string{"plugin_cmd", "plugin_checksum", "plugin_data"}, k) {
			t.Errorf("the hardened charts refuse plugin setting %s", k)
		}
	}
	for _, k := range []string{"plugin_cmd", "plugin_checksum"} {
		if _, ok := p[k]; !ok {
			t.Errorf("the hardened charts require %s", k)
		}
	}
}

func writeKey(t testing.TB, path string) {
	t.Helper()
	pem := readFile(t, filepath.Join(root, "pkg", "plugin", "workloadattestor", "aiagent", "testdata", "ed25519.pub.pem"))
	if err := writeFile(path, pem); err != nil {
		t.Fatal(err)
	}
}

// The agent Deployment with agentid-sidecar: hardened, its manifest and
// sidecar configuration parse, and the attested process (the sidecar, which
// calls the Workload API) is the one that sees the manifest.
func TestAgentWithSidecar(t *testing.T) {
	m := readManifests(t, filepath.Join(examples, "agent", "market-analysis.yaml"))
	dep := get[*appsv1.Deployment](t, m, "Deployment", "market-analysis")
	spec := &dep.Spec.Template.Spec
	for _, p := range podSecurityProblems(spec, false) {
		t.Error(p)
	}
	cm := get[*corev1.ConfigMap](t, m, "ConfigMap", "market-analysis-agentid")
	manifest, err := aiagent.ParseManifest([]byte(cm.Data["manifest.json"]))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := sidecar.ParseConfig([]byte(cm.Data["sidecar.yaml"]))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.SPIFFEID.String() != "spiffe://example.org/agent/"+manifest.Name {
		t.Errorf("sidecar pins %s, manifest names %s", cfg.SPIFFEID, manifest.Name)
	}

	side := container(t, spec, "agentid-sidecar")
	var manifestPath string
	for _, e := range side.Env {
		if e.Name == "AGENTID_MANIFEST" {
			manifestPath = e.Value
		}
	}
	if v := volumeFor(side, path.Dir(manifestPath)); v == "" || path.Base(manifestPath) != "manifest.json" {
		t.Errorf("the sidecar's AGENTID_MANIFEST %q is not the mounted manifest", manifestPath)
	}
	if !slices.Equal(side.Args, []string{"-config", "/etc/agentid/sidecar.yaml"}) || volumeFor(side, "/etc/agentid") == "" {
		t.Errorf("the sidecar does not read the mounted sidecar.yaml: %v", side.Args)
	}
	// The API socket is shared with the agent; the Workload API socket is
	// where the sidecar dials it.
	api := strings.TrimPrefix(cfg.Listen.String(), "unix://")
	checkShared(t, container(t, spec, "agent"), side, path.Dir(api), spec)
	if wl := strings.TrimPrefix(cfg.WorkloadAPI, "unix://"); volumeFor(side, path.Dir(wl)) != "spire-agent-socket" {
		t.Errorf("the sidecar dials %s, which is not the mounted agent socket", cfg.WorkloadAPI)
	}

	// The metrics listener is the port the pod declares and probes.
	_, port, err := net.SplitHostPort(cfg.MetricsListen)
	if err != nil {
		t.Fatalf("sidecar metrics_listen %q: %v", cfg.MetricsListen, err)
	}
	var declared bool
	for _, p := range side.Ports {
		declared = declared || (p.Name == "sidecar-metrics" && strconv.Itoa(int(p.ContainerPort)) == port)
	}
	if rp := side.ReadinessProbe; !declared || rp == nil || rp.HTTPGet == nil || rp.HTTPGet.Path != "/healthz" || rp.HTTPGet.Port.String() != "sidecar-metrics" {
		t.Errorf("the sidecar's metrics_listen %s is not its declared sidecar-metrics port probed on /healthz: ports %v, probe %v", cfg.MetricsListen, side.Ports, rp)
	}

	// The agent it is: declared in the mesh example, with selectors the
	// pod meets.
	values := mergedValues(t, releaseFor(t, "mesh/values.yaml"))
	var selectors []string
	for _, a := range dig(t, values, "server", "agents").([]any) {
		if a.(map[string]any)["name"] == manifest.Name {
			selectors = stringList(a.(map[string]any)["selectors"])
		}
	}
	want := []string{"aiagent:name:" + manifest.Name, "k8s:ns:" + dep.Namespace, "k8s:sa:" + spec.ServiceAccountName}
	if !slices.Equal(selectors, want) {
		t.Errorf("declared selectors %v, the pod would get %v", selectors, want)
	}
}

// The mesh example: agentid-extauthz is the CUSTOM provider that
// examples/istio declares, with the rules of examples/istio's extauthz
// ConfigMap (which compile), the audience its RequestAuthentication checks,
// and the issuer spire-server writes; the crm service is the one its
// policies select.
func TestMeshExample(t *testing.T) {
	r := releaseFor(t, "mesh/values.yaml")
	m := render(t, r)
	cfg := serverConfig(t, m)
	istio := istioDocuments(t)

	// The provider service.
	var provider map[string]any
	for _, p := range dig(t, istio["meshconfig.yaml"][0], "spec", "meshConfig", "extensionProviders").([]any) {
		if p.(map[string]any)["name"] == "agentid-extauthz" {
			provider = p.(map[string]any)["envoyExtAuthzGrpc"].(map[string]any)
		}
	}
	svc := get[*corev1.Service](t, m, "Service", "agentid-extauthz")
	if want := fmt.Sprintf("%s.%s.svc.cluster.local", svc.Name, r.namespace); provider["service"] != want || provider["port"] != int(svc.Spec.Ports[0].Port) {
		t.Errorf("mesh provider %v:%v, the chart's extauthz is %s:%d", provider["service"], provider["port"], want, svc.Spec.Ports[0].Port)
	}

	// The configuration and its rules.
	var ours, theirs struct {
		TrustDomains []string        `yaml:"trust_domains"`
		Audiences    []string        `yaml:"audiences"`
		Rules        []extauthz.Rule `yaml:"rules"`
		Revocation   struct {
			Address  string `yaml:"address"`
			ServerID string `yaml:"server_id"`
		} `yaml:"revocation"`
	}
	unmarshal(t, get[*corev1.ConfigMap](t, m, "ConfigMap", "agentid-extauthz").Data["extauthz.yaml"], &ours)
	for _, d := range istio["extauthz.yaml"] {
		if d["kind"] == "ConfigMap" {
			unmarshal(t, dig(t, d, "data", "extauthz.yaml").(string), &theirs)
		}
	}
	if fmt.Sprint(ours.Rules) != fmt.Sprint(theirs.Rules) || !slices.Equal(ours.Audiences, theirs.Audiences) {
		t.Errorf("extauthz rules or audiences differ from examples/istio:\n%v %v\n%v %v", ours.Rules, ours.Audiences, theirs.Rules, theirs.Audiences)
	}
	v, err := verify.New(verify.Config{Bundles: jwtbundle.NewSet(), Audiences: ours.Audiences, TrustDomains: []spiffeid.TrustDomain{cfg.TrustDomain}, InsecureNoRevocation: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := extauthz.New(extauthz.Config{Verifier: v, Rules: ours.Rules}); err != nil {
		t.Fatal(err)
	}
	serverSvc := get[*corev1.Service](t, m, "Service", "agentid-server")
	if want := fmt.Sprintf("%s.%s.svc:%d", serverSvc.Name, r.namespace, serverSvc.Spec.Ports[0].Port); ours.Revocation.Address != want || ours.Revocation.ServerID != cfg.ServerID.String() {
		t.Errorf("extauthz watches %s as %s, the server is %s as %s", ours.Revocation.Address, ours.Revocation.ServerID, want, cfg.ServerID)
	}
	extauthzID := fmt.Sprintf("spiffe://%s/ns/%s/sa/agentid-extauthz", cfg.TrustDomain.Name(), r.namespace)
	if !slices.ContainsFunc(cfg.Verifiers, func(id spiffeid.ID) bool { return id.String() == extauthzID }) {
		t.Errorf("agentid-server does not let %s watch revocations (%v)", extauthzID, cfg.Verifiers)
	}

	// Istio checks the issuer spire-server writes and the audience
	// extauthz accepts.
	serverConf := parseSPIREConfig(t, get[*corev1.ConfigMap](t, m, "ConfigMap", "agentid-spire-server").Data["server.conf"])
	rule := dig(t, istio["requestauthentication.yaml"][0], "spec", "jwtRules").([]any)[0].(map[string]any)
	if rule["issuer"] != serverConf.Server.JWTIssuer || !slices.Equal(stringList(rule["audiences"]), ours.Audiences) {
		t.Errorf("Istio expects issuer %v audiences %v; spire-server writes %q, extauthz accepts %v", rule["issuer"], rule["audiences"], serverConf.Server.JWTIssuer, ours.Audiences)
	}

	// The crm service is what the policies select.
	crm := readManifests(t, filepath.Join(examples, "mesh", "crm.yaml"))
	dep := get[*appsv1.Deployment](t, crm, "Deployment", "crm")
	for _, p := range podSecurityProblems(&dep.Spec.Template.Spec, false) {
		t.Error(p)
	}
	for _, file := range []string{"requestauthentication.yaml", "authorizationpolicy.yaml"} {
		for _, d := range istio[file] {
			sel := dig(t, d, "spec", "selector", "matchLabels").(map[string]any)
			if dig(t, d, "metadata", "namespace") != dep.Namespace {
				t.Errorf("%s: namespace %v, crm runs in %s", file, dig(t, d, "metadata", "namespace"), dep.Namespace)
			}
			for k, v := range sel {
				if dep.Spec.Template.Labels[k] != v {
					t.Errorf("%s selects %s=%v, crm's pods carry %v", file, k, v, dep.Spec.Template.Labels)
				}
			}
		}
	}
}

func istioDocuments(t testing.TB) map[string][]map[string]any {
	t.Helper()
	docs := map[string][]map[string]any{}
	for _, f := range []string{"meshconfig.yaml", "extauthz.yaml", "requestauthentication.yaml", "authorizationpolicy.yaml"} {
		dec := yaml.NewDecoder(strings.NewReader(string(readFile(t, filepath.Join(root, "examples", "istio", f)))))
		for {
			var d map[string]any
			if err := dec.Decode(&d); err != nil {
				break
			}
			docs[f] = append(docs[f], d)
		}
		if len(docs[f]) == 0 {
			t.Fatalf("examples/istio/%s: no documents", f)
		}
	}
	return docs
}

func unmarshal(t testing.TB, s string, v any) {
	t.Helper()
	if err := yaml.Unmarshal([]byte(s), v); err != nil {
		t.Fatal(err)
	}
}

// kagentAgent is the part of kagent's v1alpha2 Agent the mapping reads,
// decoded strictly (so the example uses kagent's field names).
type kagentAgent struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
	} `json:"metadata"`
	Spec struct {
		Type        string `json:"type"`
		Description string `json:"description"`
		Declarative struct {
			ModelConfig   string `json:"modelConfig"`
			SystemMessage string `json:"systemMessage"`
			Tools         []struct {
				Type      string `json:"type"`
				McpServer *struct {
					APIGroup  string   `json:"apiGroup"`
					Kind      string   `json:"kind"`
					Name      string   `json:"name"`
					ToolNames []string `json:"toolNames"`
				} `json:"mcpServer"`
				Agent *struct {
					Name string `json:"name"`
				} `json:"agent"`
			} `json:"tools"`
			Deployment struct {
				Env          []corev1.EnvVar      `json:"env"`
				Volumes      []corev1.Volume      `json:"volumes"`
				VolumeMounts []corev1.VolumeMount `json:"volumeMounts"`
			} `json:"deployment"`
		} `json:"declarative"`
	} `json:"spec"`
}

type kagentModelConfig struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
	} `json:"metadata"`
	Spec struct {
		Provider        string `json:"provider"`
		Model           string `json:"model"`
		APIKeySecret    string `json:"apiKeySecret"`
		APIKeySecretKey string `json:"apiKeySecretKey"`
	} `json:"spec"`
}

// The kagent agent maps, by the rules in kagent/agent.yaml, to the agentid
// declaration in kagent/values.yaml and to the manifest mounted into it.
func TestKagentMapping(t *testing.T) {
	var agents []kagentAgent
	models := map[string]kagentModelConfig{}
	manifests := map[string]*aiagent.Manifest{}
	dec := yaml.NewDecoder(strings.NewReader(string(readFile(t, filepath.Join(examples, "kagent", "agent.yaml")))))
	for {
		var d map[string]any
		if err := dec.Decode(&d); err != nil {
			break
		}
		switch d["kind"] {
		case "Agent":
			var a kagentAgent
			if err := decodeStrict(d, &a); err != nil {
				t.Fatal(err)
			}
			agents = append(agents, a)
		case "ModelConfig":
			var mc kagentModelConfig
			if err := decodeStrict(d, &mc); err != nil {
				t.Fatal(err)
			}
			models[mc.Metadata.Name] = mc
		case "ConfigMap":
			var cm corev1.ConfigMap
			if err := decodeStrict(d, &cm); err != nil {
				t.Fatal(err)
			}
			mf, err := aiagent.ParseManifest([]byte(cm.Data["manifest.json"]))
			if err != nil {
				t.Fatal(err)
			}
			manifests[cm.Name] = mf
		}
	}
	if len(agents) == 0 {
		t.Fatal("no kagent Agent")
	}

	r := releaseFor(t, "kagent/values.yaml")
	cfg := serverConfig(t, render(t, r))
	td := cfg.TrustDomain.Name()
	for _, a := range agents {
		var want struct {
			selectors, ceiling, subAgents, tools []string
		}
		for _, tool := range a.Spec.Declarative.Tools {
			switch tool.Type {
			case "McpServer":
				want.tools = append(want.tools, "mcp:"+tool.McpServer.Name)
				for _, n := range tool.McpServer.ToolNames {
					want.ceiling = append(want.ceiling, "mcp:"+tool.McpServer.Name+"/"+n)
				}
			case "Agent":
				want.subAgents = append(want.subAgents, "spiffe://"+td+"/agent/"+tool.Agent.Name)
			}
		}
		want.selectors = []string{"aiagent:name:" + a.Metadata.Name}
		for _, tool := range want.tools {
			want.selectors = append(want.selectors, "aiagent:tool:"+tool)
		}
		want.selectors = append(want.selectors, "k8s:ns:"+a.Metadata.Namespace, "k8s:sa:"+a.Metadata.Name)
		sort.Strings(want.ceiling)

		i := slices.IndexFunc(cfg.Agents, func(s configAgent) bool { return s.Name == a.Metadata.Name })
		if i < 0 {
			t.Fatalf("kagent agent %s is not declared", a.Metadata.Name)
		}
		got := cfg.Agents[i]
		var sels, subs []string
		for _, s := range got.Selectors {
			sels = append(sels, s.Type+":"+s.Value)
		}
		for _, s := range got.SubAgents {
			subs = append(subs, s.String())
		}
		if got.SPIFFEID.String() != "spiffe://"+td+"/agent/"+a.Metadata.Name || !slices.Equal(sels, want.selectors) ||
			!slices.Equal(got.ScopeCeiling.Strings(), want.ceiling) || !slices.Equal(subs, want.subAgents) {
			t.Errorf("agent %s: %s %v %v %v, want selectors %v ceiling %v sub-agents %v", a.Metadata.Name, got.SPIFFEID, sels, got.ScopeCeiling.Strings(), subs, want.selectors, want.ceiling, want.subAgents)
		}

		// The manifest the agent's pod mounts, at AGENTID_MANIFEST.
		d := a.Spec.Declarative.Deployment
		var manifestPath string
		for _, e := range d.Env {
			if e.Name == "AGENTID_MANIFEST" {
				manifestPath = e.Value
			}
		}
		var cmName string
		for _, vm := range d.VolumeMounts {
			if vm.MountPath == path.Dir(manifestPath) {
				for _, v := range d.Volumes {
					if v.Name == vm.Name && v.ConfigMap != nil {
						cmName = v.ConfigMap.Name
					}
				}
			}
		}
		mf := manifests[cmName]
		if mf == nil {
			t.Fatalf("agent %s: AGENTID_MANIFEST %q is not a mounted manifest", a.Metadata.Name, manifestPath)
		}
		model := models[a.Spec.Declarative.ModelConfig]
		if mf.Name != a.Metadata.Name || !slices.Equal(mf.Tools, want.tools) ||
			!strings.EqualFold(mf.Model.Provider, model.Spec.Provider) || mf.Model.Name != model.Spec.Model {
			t.Errorf("agent %s: manifest %s tools %v model %s/%s, want tools %v model %s/%s", a.Metadata.Name, mf.Name, mf.Tools,
				mf.Model.Provider, mf.Model.Name, want.tools, model.Spec.Provider, model.Spec.Model)
		}
	}
}

type configAgent = agent.Agent

func writeFile(path string, b []byte) error { return os.WriteFile(path, b, 0o600) }
