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

# --- Label Studio (issue 8): its own virtualenv, never the project's (its pins clash).
# The tests (tests/annotation/conftest.py) start it on loopback with SQLite; the
# template database below holds the applied migrations so each start skips them.
LS_VENV=.services/label-studio-venv
LS_SPEC='label-studio>=1.23,<1.24'
if ! "$LS_VENV/bin/python" -c 'import label_studio, sys; sys.exit(not label_studio.__version__.startswith("1.23."))' 2>/dev/null; then
  echo "install-services: installing label-studio into $LS_VENV"
  python3 -m venv "$LS_VENV"
  "$LS_VENV/bin/python" -m pip install --quiet --progress-bar off --upgrade pip
  "$LS_VENV/bin/python" -m pip install --quiet --progress-bar off "$LS_SPEC"
  rm -rf .services/label-studio-template
fi
if [ ! -f .services/label-studio-template/label_studio.sqlite3 ]; then
  echo "install-services: migrating the Label Studio template database (a few minutes)"
  mkdir -p .services/label-studio-template
  LABEL_STUDIO_BASE_DATA_DIR="$PWD/.services/label-studio-template" \
    "$LS_VENV/bin/label-studio" version >/dev/null
fi

# --- Chromium (issue 8): the labeling page in a real browser (tests/annotation/test_ui.py)
# and its screenshot (docs/img); CJK and emoji fonts so the sentences render.
if ! command -v chromium >/dev/null 2>&1 || ! dpkg -s fonts-noto-cjk fonts-noto-color-emoji >/dev/null 2>&1; then
  echo "install-services: installing chromium and fonts"
  apt_install chromium fonts-noto-cjk fonts-noto-color-emoji
fi
