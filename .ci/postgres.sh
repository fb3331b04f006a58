#!/usr/bin/env bash
# Make PostgreSQL server binaries available for the test suite (Debian/Ubuntu CI, as root).
# Idempotent: does nothing if initdb/pg_ctl are already installed. The tests start and stop
# their own throwaway server (tests/conftest.py), so this script never starts one.
set -euo pipefail

have_server() {
    compgen -G "/usr/lib/postgresql/*/bin/pg_ctl" >/dev/null || command -v pg_ctl >/dev/null
}

if have_server; then
    echo "postgres.sh: PostgreSQL server binaries already installed"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "postgres.sh: PostgreSQL is missing and installing it needs root" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends postgresql >/dev/null
# Debian's package creates and starts a "main" cluster; the tests do not use it.
if command -v pg_lsclusters >/dev/null; then
    pg_lsclusters --no-header | while read -r version cluster _; do
        pg_ctlcluster "$version" "$cluster" stop || true
    done
fi

have_server
echo "postgres.sh: installed $(ls /usr/lib/postgresql)"
