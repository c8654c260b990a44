#!/usr/bin/env bash
# Pins the SPIRE plugins' checksums in the chart.
#
#   charts/images/checksums.sh write   # rebuild, write charts/agentid/plugin-checksums.yaml
#   charts/images/checksums.sh check   # rebuild, fail when a pinned checksum differs
#
# Besides the chart's file, the example values for the hardened SPIRE charts
# pin the checksums too, on lines marked "# <plugin> <arch>"
# (examples/kubernetes/existing-spire/spire-values.yaml); both are written
# and checked.
#
# SPIRE refuses a plugin whose sha256 is not plugin_checksum, so the chart
# must pin the checksums of exactly the binaries in the agentid-composer and
# agentid-attestor images. Both come from build.sh with the same flags; the Go
# version is part of the input and is recorded in the file (the Dockerfile's
# GO_VERSION must match it: `check` fails if it does not).
#
# Run `write` (make checksums) after changing the plugins, their dependencies
# or the Go version, and commit the file with the change.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
file=$root/charts/agentid/plugin-checksums.yaml
marked=("$root/examples/kubernetes/existing-spire/spire-values.yaml")
archs=(amd64 arm64)
plugins=(agentid-composer agentid-attestor)

mode=${1:-}
case "$mode" in
write | check) ;;
*)
	echo "usage: $0 write|check" >&2
	exit 2
	;;
esac

go_version=$("${GO:-go}" env GOVERSION)
docker_go=$(sed -n 's/^ARG GO_VERSION=//p' "$here/Dockerfile")
if [ "go$docker_go" != "$go_version" ]; then
	echo "$0: the Dockerfile builds with Go $docker_go but this Go is $go_version: the checksums would not match the images" >&2
	exit 1
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
{
	echo "# The sha256 of the SPIRE plugin binaries in the agentid images, per"
	echo "# architecture. Written by charts/images/checksums.sh (make checksums) from"
	echo "# the same reproducible build as the images; do not edit by hand."
	echo "goVersion: $go_version"
	for arch in "${archs[@]}"; do
		"$here/build.sh" "$tmp/$arch" "$arch" "${plugins[@]}"
		echo "$arch:"
		for p in "${plugins[@]}"; do
			echo "  $p: $(sha256sum "$tmp/$arch/$p" | awk '{print $1}')"
		done
	done
} >"$tmp/plugin-checksums.yaml"

# Rewrite the marked lines of the example values with the new checksums.
for f in "${marked[@]}"; do
	cp "$f" "$tmp/$(basename "$f")"
	for arch in "${archs[@]}"; do
		for p in "${plugins[@]}"; do
			sum=$(sha256sum "$tmp/$arch/$p" | awk '{print $1}')
			sed -i -E "s/(plugin_checksum: )[0-9a-f]*( # $p $arch)\$/\1$sum\2/" "$tmp/$(basename "$f")"
		done
	done
done

if [ "$mode" = write ]; then
	cp "$tmp/plugin-checksums.yaml" "$file"
	for f in "${marked[@]}"; do cp "$tmp/$(basename "$f")" "$f"; done
	echo "$0: wrote $file ${marked[*]}"
	exit 0
fi
stale=0
diff -u "$file" "$tmp/plugin-checksums.yaml" || stale=1
for f in "${marked[@]}"; do diff -u "$f" "$tmp/$(basename "$f")" || stale=1; done
if [ "$stale" = 1 ]; then
	echo "$0: pinned plugin checksums are stale: run make checksums and commit the result" >&2
	exit 1
fi
echo "$0: plugin checksums up to date"
