#!/usr/bin/env bash
# Installs what the push tests need: `openssl` (a self-signed certificate for the local APNs
# server; scripts/setup.sh installs it too) and PyPI's `http_ece` (decrypts Web Push payloads
# to cross-check ours). Safe to run again: it installs only what is missing.
set -euo pipefail
. "$(dirname "$0")/lib/install.sh"
apt_install openssl
pip_install 'import http_ece, cryptography' http_ece cryptography
