package chart

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"gopkg.in/yaml.v3"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// kubeVersion is the Kubernetes version charts are rendered for. Helm built
// as a Go tool defaults to v1.20, below the chart's kubeVersion.
const kubeVersion = "1.33.0"

var (
	root     = repoRoot()
	chartDir = filepath.Join(root, "charts", "agentid")
	examples = filepath.Join(root, "examples", "kubernetes")
)

func repoRoot() string {
	wd, err := os.Getwd()
	if err != nil {
		panic(err)
	}
	return filepath.Clean(filepath.Join(wd, "..", ".."))
}

// helmHome isolates Helm's cache, config and data directories from the
// user's; TestMain creates it.
var helmHome string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "agentid-chart-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	helmHome = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

var helmBin = sync.OnceValues(func() (string, error) {
	// `go tool -n` builds the tool into the build cache when needed and
	// prints its path; later runs answer from the cache in under a second.
	cmd := exec.Command("go", "tool", "-n", "helm")
	cmd.Dir = filepath.Join(root, "test", "tools", "helm")
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("building helm in test/tools/helm: %w: %s", err, stderr.String())
	}
	return strings.TrimSpace(string(out)), nil
})

// runHelm runs helm with args and returns its standard output, or an error
// holding its standard error.
func runHelm(t testing.TB, args ...string) (string, error) {
	t.Helper()
	bin, err := helmBin()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(),
		"HELM_CACHE_HOME="+filepath.Join(helmHome, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(helmHome, "config"),
		"HELM_DATA_HOME="+filepath.Join(helmHome, "data"),
	)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("helm %s: %w: %s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

// release is one `helm template` of the chart.
type release struct {
	name, namespace string
	values          []string // values files
	set             []string // --set arguments
}

func (r release) args(cmd string) []string {
	args := []string{cmd}
	switch cmd {
	case "template":
		args = append(args, r.name)
	case "lint":
		args = append(args, "--strict") // warnings fail too
	}
	args = append(args, chartDir, "--namespace", r.namespace, "--kube-version", kubeVersion)
	for _, v := range r.values {
		args = append(args, "--values", v)
	}
	for _, s := range r.set {
		args = append(args, "--set", s)
	}
	return args
}

// render templates the release and decodes every manifest strictly.
func render(t testing.TB, r release) *manifests {
	t.Helper()
	out, err := runHelm(t, r.args("template")...)
	if err != nil {
		t.Fatal(err)
	}
	m, err := decodeManifests(strings.NewReader(out))
	if err != nil {
		t.Fatalf("release %s: %v", r.name, err)
	}
	return m
}

// object is one decoded manifest.
type object struct {
	kind, name string
	obj        any // pointer to the k8s.io/api type
}

type manifests struct {
	objects []object
}

// serviceMonitor is the prometheus-operator CRD, with the fields the chart
// sets (it is not in k8s.io/api).
type serviceMonitor struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Selector          metav1.LabelSelector `json:"selector"`
		NamespaceSelector struct {
			MatchNames []string `json:"matchNames"`
		} `json:"namespaceSelector"`
		Endpoints []struct {
			Port     string `json:"port"`
			Path     string `json:"path"`
			Interval string `json:"interval"`
		} `json:"endpoints"`
	} `json:"spec"`
}

// peerAuthentication is Istio's CRD, with the fields the chart sets.
type peerAuthentication struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Selector metav1.LabelSelector `json:"selector"`
		MTLS     struct {
			Mode string `json:"mode"`
		} `json:"mtls"`
	} `json:"spec"`
}

// newObject returns an empty object of the type for apiVersion and kind.
func newObject(apiVersion, kind string) (any, error) {
	switch apiVersion + " " + kind {
	case "v1 ConfigMap":
		return &corev1.ConfigMap{}, nil
	case "v1 Service":
		return &corev1.Service{}, nil
	case "v1 ServiceAccount":
		return &corev1.ServiceAccount{}, nil
	case "v1 PersistentVolumeClaim":
		return &corev1.PersistentVolumeClaim{}, nil
	case "v1 Namespace":
		return &corev1.Namespace{}, nil
	case "apps/v1 StatefulSet":
		return &appsv1.StatefulSet{}, nil
	case "apps/v1 DaemonSet":
		return &appsv1.DaemonSet{}, nil
	case "apps/v1 Deployment":
		return &appsv1.Deployment{}, nil
	case "rbac.authorization.k8s.io/v1 ClusterRole":
		return &rbacv1.ClusterRole{}, nil
	case "rbac.authorization.k8s.io/v1 ClusterRoleBinding":
		return &rbacv1.ClusterRoleBinding{}, nil
	case "rbac.authorization.k8s.io/v1 Role":
		return &rbacv1.Role{}, nil
	case "rbac.authorization.k8s.io/v1 RoleBinding":
		return &rbacv1.RoleBinding{}, nil
	case "networking.k8s.io/v1 NetworkPolicy":
		return &networkingv1.NetworkPolicy{}, nil
	case "policy/v1 PodDisruptionBudget":
		return &policyv1.PodDisruptionBudget{}, nil
	case "monitoring.coreos.com/v1 ServiceMonitor":
		return &serviceMonitor{}, nil
	case "security.istio.io/v1 PeerAuthentication":
		return &peerAuthentication{}, nil
	}
	return nil, fmt.Errorf("no type for apiVersion %q kind %q", apiVersion, kind)
}

// decodeManifests decodes a YAML stream of Kubernetes objects, each strictly
// into its type: an unknown or misplaced field is an error.
func decodeManifests(r io.Reader) (*manifests, error) {
	dec := yaml.NewDecoder(r)
	m := &manifests{}
	for i := 0; ; i++ {
		var doc map[string]any
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return m, nil
		}
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		if doc == nil {
			continue
		}
		apiVersion, _ := doc["apiVersion"].(string)
		kind, _ := doc["kind"].(string)
		obj, err := newObject(apiVersion, kind)
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		if err := decodeStrict(doc, obj); err != nil {
			return nil, fmt.Errorf("document %d (%s): %w", i, kind, err)
		}
		meta, _ := doc["metadata"].(map[string]any)
		name, _ := meta["name"].(string)
		m.objects = append(m.objects, object{kind: kind, name: name, obj: obj})
	}
}

// decodeStrict decodes a generic YAML value into out through JSON,
// refusing fields that out's type does not have.
func decodeStrict(in, out any) error {
	b, err := json.Marshal(in)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(out); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data")
	}
	return nil
}

// get returns the object of kind and name, failing the test without one.
func get[T any](t testing.TB, m *manifests, kind, name string) T {
	t.Helper()
	for _, o := range m.objects {
		if o.kind == kind && o.name == name {
			v, ok := o.obj.(T)
			if !ok {
				t.Fatalf("%s %s is a %T", kind, name, o.obj)
			}
			return v
		}
	}
	t.Fatalf("no %s %s among %s", kind, name, m.names())
	var zero T
	return zero
}

func (m *manifests) names() string {
	var s []string
	for _, o := range m.objects {
		s = append(s, o.kind+"/"+o.name)
	}
	return strings.Join(s, ", ")
}

// podSpecs returns every workload's pod spec by "<kind>/<name>".
func (m *manifests) podSpecs() map[string]*corev1.PodSpec {
	specs := map[string]*corev1.PodSpec{}
	for _, o := range m.objects {
		switch v := o.obj.(type) {
		case *appsv1.StatefulSet:
			specs[o.kind+"/"+o.name] = &v.Spec.Template.Spec
		case *appsv1.DaemonSet:
			specs[o.kind+"/"+o.name] = &v.Spec.Template.Spec
		case *appsv1.Deployment:
			specs[o.kind+"/"+o.name] = &v.Spec.Template.Spec
		}
	}
	return specs
}

// readYAML decodes a YAML file (one document) into a generic value.
func readYAML(t testing.TB, path string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if err := yaml.Unmarshal(b, &v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return v
}

// readManifests decodes a file of Kubernetes objects strictly.
func readManifests(t testing.TB, path string) *manifests {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := decodeManifests(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return m
}

// dig walks a generic YAML value along keys, failing the test when a key is
// missing.
func dig(t testing.TB, v any, keys ...string) any {
	t.Helper()
	for i, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			t.Fatalf("%s: not a map", strings.Join(keys[:i], "."))
		}
		if v, ok = m[k]; !ok {
			t.Fatalf("%s: missing", strings.Join(keys[:i+1], "."))
		}
	}
	return v
}

// container returns the named container (or init container) of spec.
func container(t testing.TB, spec *corev1.PodSpec, name string) *corev1.Container {
	t.Helper()
	for _, list := range [][]corev1.Container{spec.InitContainers, spec.Containers} {
		for i := range list {
			if list[i].Name == name {
				return &list[i]
			}
		}
	}
	t.Fatalf("no container %s", name)
	return nil
}

// volumeFor returns the name of the volume c mounts at dir ("" when none).
func volumeFor(c *corev1.Container, dir string) string {
	for _, m := range c.VolumeMounts {
		if m.MountPath == dir {
			return m.Name
		}
	}
	return ""
}
