#!/usr/bin/env bash
# Installs what a throwaway single-node Kubernetes cluster needs from Debian
# (test/cluster, make e2e-k8s) when it is missing: containerd (1.6) and runc
# for the kubelet's containers, the CNI plugins (bridge, host-local,
# loopback, portmap in /usr/lib/cni) and iptables for kube-proxy.
# Idempotent: does nothing when every program is there. The Kubernetes
# programs themselves come from the Go module proxy (test/tools/build.sh kube).
#
# The packages' services are never started here: the harness runs its own
# containerd with its own root, state and socket, never the machine's.
set -euo pipefail

need=()
command -v containerd >/dev/null || need+=(containerd)
command -v runc >/dev/null || need+=(runc)
[[ -x /usr/lib/cni/bridge && -x /usr/lib/cni/host-local && -x /usr/lib/cni/loopback ]] || need+=(containernetworking-plugins)
command -v iptables >/dev/null || need+=(iptables)
if [[ ${#need[@]} -eq 0 ]]; then
	exit 0
fi
sudo=""
if [[ $(id -u) -ne 0 ]]; then
	command -v sudo >/dev/null || { echo "kube-node.sh: ${need[*]} missing and neither root nor sudo is available to install them" >&2; exit 1; }
	sudo="sudo"
fi
# A policy-rc.d that refuses keeps the package scripts from starting the
# machine's own containerd (a no-op where no init system runs services).
policy=/usr/sbin/policy-rc.d
added_policy=0
if [[ ! -e $policy ]]; then
	printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
	$sudo chmod 0755 "$policy"
	added_policy=1
fi
trap 'if [[ $added_policy = 1 ]]; then $sudo rm -f "$policy"; fi' EXIT
$sudo env DEBIAN_FRONTEND=noninteractive apt-get update
$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need[@]}"
for p in containerd runc iptables; do
	command -v "$p" >/dev/null || { echo "kube-node.sh: $p still missing after installing ${need[*]}" >&2; exit 1; }
done
[[ -x /usr/lib/cni/bridge ]] || { echo "kube-node.sh: /usr/lib/cni/bridge still missing" >&2; exit 1; }
