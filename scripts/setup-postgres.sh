#!/usr/bin/env bash
# Installs what the PostgreSQL store and cluster tests need: Debian's `postgresql` server (the
# tests start their own private cluster with initdb/pg_ctl on a free port of 127.0.0.1; the
# package's own service is not used). Safe to run again: it installs only what is missing.
set -euo pipefail
packages=(postgresql)
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  for attempt in 1 2 3 4 5; do
    if $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
       $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"; then
      break
    fi
    echo "apt-get failed (the dpkg lock may be busy); retrying in 5 s" >&2
    sleep 5
  done
fi
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { echo "postgresql is installed but initdb is missing" >&2; exit 1; }
