#!/usr/bin/env bash
# Installs what the PostgreSQL store and cluster tests need: Debian's `postgresql` server (the
# tests start their own private cluster with initdb/pg_ctl on a free port of 127.0.0.1; the
# package's own service is not used). Safe to run again: it installs only what is missing.
set -euo pipefail
. "$(dirname "$0")/lib/install.sh"
apt_install postgresql
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { echo "postgresql is installed but initdb is missing" >&2; exit 1; }
