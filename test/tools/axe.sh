#!/usr/bin/env bash
# Installs axe-core (npm, pinned by test/tools/axe/package-lock.json) for
# the user page's accessibility check in the browser test, and npm itself
# (Debian's package) when missing. Idempotent: does nothing when
# test/tools/axe/node_modules/axe-core/axe.min.js is there.
set -euo pipefail
dir="$(cd "$(dirname "$0")" && pwd)/axe"
[[ -f "$dir/node_modules/axe-core/axe.min.js" ]] && exit 0
if ! command -v npm >/dev/null; then
	sudo=""
	if [[ $(id -u) -ne 0 ]]; then
		command -v sudo >/dev/null || { echo "axe.sh: npm is missing and neither root nor sudo is available to install it" >&2; exit 1; }
		sudo="sudo"
	fi
	$sudo env DEBIAN_FRONTEND=noninteractive apt-get update
	$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends npm
fi
cd "$dir" && npm ci --no-audit --no-fund
[[ -f "$dir/node_modules/axe-core/axe.min.js" ]] || { echo "axe.sh: npm ci did not install axe-core" >&2; exit 1; }
