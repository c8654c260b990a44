#!/usr/bin/env bash
# Installs PostgreSQL (Debian's `postgresql` package) when no server binaries
# are found, for the tests that start a throwaway cluster
# (pkg/store/pgstore/pgtest). Idempotent: does nothing when they are there.
# The package would create and start a "main" cluster of its own; the tests
# need none, so createcluster.conf tells it not to.
set -euo pipefail

have() {
	[[ -n "${AGENTID_PG_BIN:-}" && -x "${AGENTID_PG_BIN}/postgres" ]] && return 0
	for d in /usr/lib/postgresql/*/bin; do
		[[ -x "$d/postgres" && -x "$d/initdb" ]] && return 0
	done
	return 1
}

if have; then
	exit 0
fi
sudo=""
if [[ $(id -u) -ne 0 ]]; then
	command -v sudo >/dev/null || { echo "postgres.sh: PostgreSQL is missing and neither root nor sudo is available to install it" >&2; exit 1; }
	sudo="sudo"
fi
$sudo mkdir -p /etc/postgresql-common
echo "create_main_cluster = false" | $sudo tee /etc/postgresql-common/createcluster.conf >/dev/null
$sudo env DEBIAN_FRONTEND=noninteractive apt-get update
$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql
have || { echo "postgres.sh: postgresql installed, but no /usr/lib/postgresql/*/bin/postgres" >&2; exit 1; }
