#!/usr/bin/env bash
# Builds the outside programs that the end-to-end tests run, each from its
# own tool module under test/tools/<name>, into <repo>/bin/<name>/.
#
#   test/tools/build.sh [spire|hydra|all]     (default: all)
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
	echo "usage: $0 [spire|hydra|all]" >&2
	exit 2
}

# stamp prints what a set of binaries was built from.
stamp() {
	local dir=$1 tags=$2
	{
		sha256sum "$dir/go.mod" "$dir/go.sum" | awk '{print $1}'
		echo "tags=$tags"
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
	(cd "$dir" && GOWORK=off "$go_cmd" build -tags "$tags" -o "$out/" "${pkgs[@]}")
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

case "${1:-all}" in
spire) build_spire ;;
hydra) build_hydra ;;
all)
	build_spire
	build_hydra
	;;
*) usage ;;
esac
