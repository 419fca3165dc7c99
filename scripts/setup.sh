#!/usr/bin/env bash
# Installs what building ChatGateway needs on a fresh Debian machine (Swift itself must be on
# PATH). Safe to run again: it installs only what is missing.
set -euo pipefail
. "$(dirname "$0")/lib/install.sh"
# libzstd-dev and libvips-dev: the media store's system libraries (CZstd, CVips), needed to build.
apt_install --no-recommends libsqlite3-dev zlib1g-dev libzstd-dev libvips-dev pkg-config openssl curl
command -v swift >/dev/null || { echo "swift is not on PATH: install the Swift 6 toolchain first" >&2; exit 1; }
