#!/usr/bin/env bash
# Installs the services that the tests start on loopback. Idempotent; each step is
# skipped when its service is already there. Needs root for apt-get (CI runs as root).
set -euo pipefail
cd "$(dirname "$0")/.."

apt_install() {
  if [ "$(id -u)" != 0 ]; then
    echo "install-services: need root to apt-get install $*" >&2; exit 1
  fi
  if [ ! -f /tmp/.parallelner-apt-updated ]; then
    apt-get update -qq && touch /tmp/.parallelner-apt-updated
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# (service installers are appended below by the issues that need them)

# --- PostgreSQL (issue 9): the tests start a throw-away server from Debian's binaries
# (tests/conftest.py `postgres_url`); the Iceberg catalog and the Prefect server use it.
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  echo "install-services: installing postgresql"
  apt_install postgresql
fi
