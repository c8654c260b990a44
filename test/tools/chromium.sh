#!/usr/bin/env bash
# Installs headless Chromium (Debian's `chromium` package) when it is
# missing, for the user page's browser test (test/e2e/userpage_e2e_test.go,
# driven by chromedp). Idempotent: does nothing when a chromium binary is
# on PATH or AGENTID_CHROMIUM names one.
set -euo pipefail

have() {
	[[ -n "${AGENTID_CHROMIUM:-}" && -x "${AGENTID_CHROMIUM}" ]] && return 0
	command -v chromium >/dev/null
}

if have; then
	exit 0
fi
sudo=""
if [[ $(id -u) -ne 0 ]]; then
	command -v sudo >/dev/null || { echo "chromium.sh: chromium is missing and neither root nor sudo is available to install it" >&2; exit 1; }
	sudo="sudo"
fi
$sudo env DEBIAN_FRONTEND=noninteractive apt-get update
$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium
have || { echo "chromium.sh: chromium installed, but no chromium on PATH" >&2; exit 1; }
