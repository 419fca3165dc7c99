#!/usr/bin/env bash
# Installs what the media feature and its tests need (docs/MEDIA.md): libzstd and libvips
# (headers and pkg-config files), the zstd CLI (the tests decompress a stored blob with it),
# and PyPI's moto[server] (a local S3-compatible server checking SigV4) plus boto3.
# Safe to run again: it installs only what is missing.
set -euo pipefail
packages=(libzstd-dev zstd libvips-dev python3-pip)
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
if ! python3 -c 'import moto, boto3, flask, werkzeug' >/dev/null 2>&1; then
  for attempt in 1 2 3; do
    if python3 -m pip install -q 'moto[server]' boto3 || \
       python3 -m pip install -q --break-system-packages 'moto[server]' boto3; then
      break
    fi
    echo "pip install failed; retrying in 5 s" >&2
    sleep 5
  done
fi
