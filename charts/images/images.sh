#!/usr/bin/env bash
# Builds the agentid container images (make images): one image per binary
# from charts/images/Dockerfile, tagged $IMAGE_REGISTRY/<binary>:$IMAGE_TAG.
#
#   IMAGE_REGISTRY=ghcr.io/agentid IMAGE_TAG=0.1.0 PLATFORMS=linux/amd64 charts/images/images.sh
#
# Needs a docker engine with buildx; CI has none, so this is not run there.
# What CI does check is that the plugin checksums pinned in the chart match a
# reproducible build of the same source (charts/images/checksums.sh check).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
registry=${IMAGE_REGISTRY:-ghcr.io/agentid}
tag=${IMAGE_TAG:-dev}
platforms=${PLATFORMS:-linux/amd64}
push=${PUSH:-false}

if ! command -v docker >/dev/null; then
	echo "$0: docker is not installed; the images cannot be built here" >&2
	exit 1
fi
for b in agentid-server agentid-composer agentid-attestor agentid-sidecar agentid-extauthz; do
	args=(buildx build --platform "$platforms" -f "$root/charts/images/Dockerfile" --target "$b" -t "$registry/$b:$tag")
	if [ "$push" = true ]; then
		args+=(--push)
	else
		args+=(--load)
	fi
	docker "${args[@]}" "$root"
done
