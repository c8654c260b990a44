package chart

import (
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
)

// agentCaps are the capabilities spire-agent keeps: ptrace read access to
// other users' /proc/<pid> and reading their manifests under
// /proc/<pid>/root.
var agentCaps = []corev1.Capability{"SYS_PTRACE", "DAC_READ_SEARCH"}

// podSecurityProblems lists every departure of spec from the chart's
// hardening: no host namespaces, and per container non-root, read-only root
// filesystem, no privilege escalation, not privileged, all capabilities
// dropped, seccomp RuntimeDefault, resources bounded. With agentException,
// the container named spire-agent must instead be exactly the documented
// exception (host PID, root, agentCaps added), no more.
func podSecurityProblems(spec *corev1.PodSpec, agentException bool) []string {
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	if spec.HostNetwork || spec.HostIPC {
		bad("host network or IPC namespace")
	}
	if spec.HostPID != agentException {
		bad("hostPID is %v", spec.HostPID)
	}
	pod := spec.SecurityContext
	if pod == nil {
		pod = &corev1.PodSecurityContext{}
	}
	for _, c := range append(slices.Clone(spec.InitContainers), spec.Containers...) {
		sc := c.SecurityContext
		if sc == nil {
			bad("%s: no securityContext", c.Name)
			continue
		}
		if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			bad("%s: allowPrivilegeEscalation is not false", c.Name)
		}
		if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
			bad("%s: root filesystem is not read-only", c.Name)
		}
		if sc.Privileged != nil && *sc.Privileged {
			bad("%s: privileged", c.Name)
		}
		if sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
			bad("%s: capabilities not dropped to none", c.Name)
		}
		seccomp := sc.SeccompProfile
		if seccomp == nil {
			seccomp = pod.SeccompProfile
		}
		if seccomp == nil || seccomp.Type != corev1.SeccompProfileTypeRuntimeDefault {
			bad("%s: seccomp profile is not RuntimeDefault", c.Name)
		}
		if c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
			bad("%s: memory request or limit missing", c.Name)
		}
		var added []corev1.Capability
		if sc.Capabilities != nil {
			added = sc.Capabilities.Add
		}
		user, nonRoot := sc.RunAsUser, sc.RunAsNonRoot
		if user == nil {
			user = pod.RunAsUser
		}
		if nonRoot == nil {
			nonRoot = pod.RunAsNonRoot
		}
		if agentException && c.Name == "spire-agent" {
			if user == nil || *user != 0 || !slices.Equal(added, agentCaps) {
				bad("%s: not exactly the documented exception (root, %v)", c.Name, agentCaps)
			}
			continue
		}
		if len(added) > 0 {
			bad("%s: adds capabilities %v", c.Name, added)
		}
		if nonRoot == nil || !*nonRoot || user == nil || *user == 0 {
			bad("%s: may run as root", c.Name)
		}
	}
	for _, v := range spec.Volumes {
		if v.HostPath == nil {
			continue
		}
		switch {
		case agentException && v.Name == "spire-agent-socket-dir":
		case v.Name == "spire-agent-socket" && mountedReadOnly(spec, v.Name):
		default:
			bad("hostPath volume %s", v.Name)
		}
	}
	return problems
}

// mountedReadOnly reports whether every mount of volume in spec is read-only.
func mountedReadOnly(spec *corev1.PodSpec, volume string) bool {
	for _, c := range append(slices.Clone(spec.InitContainers), spec.Containers...) {
		for _, m := range c.VolumeMounts {
			if m.Name == volume && !m.ReadOnly {
				return false
			}
		}
	}
	return true
}
