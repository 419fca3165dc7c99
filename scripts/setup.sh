#!/usr/bin/env bash
# Installs what building ChatGateway needs on a fresh Debian machine (Swift itself must be on
# PATH). Safe to run again: it installs only what is missing.
set -euo pipefail
# libzstd-dev and libvips-dev: the media store's system libraries (CZstd, CVips), needed to build.
packages=(libsqlite3-dev zlib1g-dev libzstd-dev libvips-dev pkg-config openssl curl)
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  for attempt in 1 2 3 4 5; do
    if $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
       $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"; then
      break
    fi
    echo "apt-get failed (the dpkg lock may be busy); retrying in 5 s" >&2
    sleep 5
  done
fi
command -v swift >/dev/null || { echo "swift is not on PATH: install the Swift 6 toolchain first" >&2; exit 1; }
