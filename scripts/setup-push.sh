#!/usr/bin/env bash
# Installs what the push tests need: `openssl` (a self-signed certificate for the local APNs
# server; scripts/setup.sh installs it too) and PyPI's `http_ece` (decrypts Web Push payloads
# to cross-check ours). Safe to run again: it installs only what is missing.
set -euo pipefail
if ! command -v openssl >/dev/null 2>&1; then
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  for attempt in 1 2 3 4 5; do
    if $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
       $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssl; then
      break
    fi
    echo "apt-get failed (the dpkg lock may be busy); retrying in 5 s" >&2
    sleep 5
  done
fi
if ! python3 -c "import http_ece, cryptography" >/dev/null 2>&1; then
  for attempt in 1 2 3; do
    python3 -m pip install --quiet http_ece cryptography && break
    echo "pip install failed; retrying in 5 s" >&2
    sleep 5
  done
fi
python3 -c "import http_ece, cryptography"
