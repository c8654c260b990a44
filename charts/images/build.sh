#!/usr/bin/env bash
# Builds agentid binaries reproducibly: the same source, Go version and
# architecture give byte-identical files, so the plugin checksums the chart
# pins (charts/agentid/plugin-checksums.yaml, written by checksums.sh with this
# script) are the checksums of the binaries in the images (the Dockerfile
# builds with this script too).
#
#   charts/images/build.sh OUT_DIR GOARCH BINARY...
#
# e.g. charts/images/build.sh /tmp/out amd64 agentid-composer agentid-attestor
#
# What makes it reproducible: static (CGO_ENABLED=0), -trimpath (no local
# paths), -buildvcs=false (no git state: a dirty tree builds the same bytes),
# an empty build id, fixed GOAMD64/GOARM64 levels, and no GOFLAGS or
# GOEXPERIMENT from the environment. -s -w drop the symbol table and DWARF.
set -euo pipefail

if [ $# -lt 3 ]; then
	echo "usage: $0 OUT_DIR GOARCH BINARY..." >&2
	exit 2
fi
out=$1 arch=$2
shift 2
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

pkgs=()
for b in "$@"; do
	case "$b" in
	agentid | agentid-server | agentid-composer | agentid-attestor | agentid-sidecar | agentid-extauthz) ;;
	*)
		echo "$0: unknown binary $b" >&2
		exit 2
		;;
	esac
	pkgs+=("./cmd/$b")
done

mkdir -p "$out"
out=$(cd "$out" && pwd)
cd "$root"
env -u GOFLAGS -u GOEXPERIMENT \
	CGO_ENABLED=0 GOOS=linux GOARCH="$arch" GOAMD64=v1 GOARM64=v8.0 GOWORK=off \
	"${GO:-go}" build -mod=readonly -trimpath -buildvcs=false -ldflags='-s -w -buildid=' -o "$out/" "${pkgs[@]}"
