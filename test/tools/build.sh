#!/usr/bin/env bash
# Builds the outside programs that the end-to-end tests run, each from its
# own tool module under test/tools/<name>, into <repo>/bin/<name>/.
#
#   test/tools/build.sh [spire|hydra|kube|etcd|coredns|golangci-lint|all]     (default: all)
#
# kube, etcd and coredns (the throwaway Kubernetes cluster of test/cluster)
# and golangci-lint (make lint) are not in
# `all`: only make e2e-k8s needs them, and their first build takes about 15
# minutes on 2 cores.
#
# Idempotent: a build is skipped when every binary is present and the stamp
# file beside them matches the tool module's go.mod, go.sum, build tags and Go
# version. Concurrent runs (parallel test packages, make -j) serialise on a
# lock file per tool, so one builds and the others reuse its output.
#
# Environment: GO (default go); AGENTID_TOOLS_BIN overrides <repo>/bin.
#
# First builds on 2 cores with empty caches: SPIRE about 6 minutes, Hydra
# about 3 (download and build). Later runs that only relink take seconds to a
# minute; up-to-date runs take well under a second.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
bin_root=${AGENTID_TOOLS_BIN:-$root/bin}
go_cmd=${GO:-go}

usage() {
	echo "usage: $0 [spire|hydra|kube|etcd|coredns|golangci-lint|all]" >&2
	exit 2
}

# ldflags, when set by a build_* function, is passed to go build and is part
# of the stamp (the Kubernetes programs take their version from it).
ldflags=""

# stamp prints what a set of binaries was built from.
stamp() {
	local dir=$1 tags=$2
	{
		# A tool module with a main of its own (coredns) stamps it too.
		sha256sum "$dir/go.mod" "$dir/go.sum" $(find "$dir" -maxdepth 1 -name '*.go' | sort) | awk '{print $1}'
		echo "tags=$tags"
		if [ -n "$ldflags" ]; then echo "ldflags=$ldflags"; fi
		"$go_cmd" env GOVERSION GOOS GOARCH
	} | sha256sum | awk '{print $1}'
}

# build NAME TAGS OUTPUT... -- PACKAGE...
build() {
	local name=$1 tags=$2
	shift 2
	local outs=()
	while [ "$1" != "--" ]; do
		outs+=("$1")
		shift
	done
	shift
	local pkgs=("$@")

	local dir=$here/$name out=$bin_root/$name
	mkdir -p "$out"
	local lock
	exec {lock}>"$out/.lock"
	flock "$lock"

	local want have=""
	want=$(stamp "$dir" "$tags")
	[ -f "$out/.stamp" ] && have=$(cat "$out/.stamp")
	local missing=0 o
	for o in "${outs[@]}"; do
		[ -x "$out/$o" ] || missing=1
	done
	if [ "$missing" = 0 ] && [ "$have" = "$want" ]; then
		echo "build.sh: $name up to date in $out"
		exec {lock}>&-
		return 0
	fi

	echo "build.sh: building $name into $out"
	local start=$SECONDS
	rm -f "$out/.stamp"
	# One program from one package is named by its output (etcd's main
	# package is its module root, go.etcd.io/etcd/server/v3).
	local dest=$out/
	if [ "${#outs[@]}" = 1 ] && [ "${#pkgs[@]}" = 1 ]; then
		dest=$out/${outs[0]}
	fi
	(cd "$dir" && GOWORK=off "$go_cmd" build -tags "$tags" -ldflags "$ldflags" -o "$dest" "${pkgs[@]}")
	echo "$want" >"$out/.stamp"
	echo "build.sh: built $name in $((SECONDS - start))s"
	exec {lock}>&-
}

build_spire() {
	build spire "" spire-server spire-agent oidc-discovery-provider -- \
		github.com/spiffe/spire/cmd/spire-server \
		github.com/spiffe/spire/cmd/spire-agent \
		github.com/spiffe/spire/support/oidc-discovery-provider
}

build_hydra() {
	# -tags sqlite compiles in the sqlite driver that DSN=memory needs.
	build hydra sqlite hydra -- github.com/ory/hydra/v2
}

# The Kubernetes programs of k8s.io/kubernetes, the version in the tool
# module's go.mod stamped in (else they report v0.0.0-master, which
# kubectl and the kubelet's node status show). -s -w: no symbol table or
# DWARF, a quarter of the size and a faster link.
build_kube() {
	local v
	v=$(awk '$1 == "k8s.io/kubernetes" { print $2; exit }' "$here/kube/go.mod")
	if [[ ! $v =~ ^v([0-9]+)\.([0-9]+)\.[0-9]+$ ]]; then
		echo "$0: no k8s.io/kubernetes vX.Y.Z in $here/kube/go.mod" >&2
		exit 1
	fi
	local x=k8s.io/component-base/version
	ldflags="-s -w -X $x.gitVersion=$v -X $x.gitMajor=${BASH_REMATCH[1]} -X $x.gitMinor=${BASH_REMATCH[2]} -X $x.gitTreeState=clean"
	build kube "" kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl -- \
		k8s.io/kubernetes/cmd/kube-apiserver \
		k8s.io/kubernetes/cmd/kube-controller-manager \
		k8s.io/kubernetes/cmd/kube-scheduler \
		k8s.io/kubernetes/cmd/kubelet \
		k8s.io/kubernetes/cmd/kube-proxy \
		k8s.io/kubernetes/cmd/kubectl
	ldflags=""
}

# CoreDNS with only the kubernetes and errors plugins: the tool module's
# own main package.
build_coredns() {
	ldflags="-s -w"
	build coredns "" coredns -- .
	ldflags=""
}

build_etcd() {
	ldflags="-s -w"
	build etcd "" etcd -- go.etcd.io/etcd/server/v3
	ldflags=""
}

build_golangci_lint() {
	# make lint's linter; built here rather than `go tool` run from a module
	# so that every worktree shares one binary (and its stamp).
	build golangci-lint "" golangci-lint -- github.com/golangci/golangci-lint/v2/cmd/golangci-lint
}

case "${1:-all}" in
spire) build_spire ;;
hydra) build_hydra ;;
kube) build_kube ;;
etcd) build_etcd ;;
coredns) build_coredns ;;
golangci-lint) build_golangci_lint ;;
all)
	build_spire
	build_hydra
	;;
*) usage ;;
esac
