#!/usr/bin/env bash
# Installs what the media feature and its tests need (docs/MEDIA.md): libzstd and libvips
# (headers and pkg-config files), the zstd CLI (the tests decompress a stored blob with it),
# and PyPI's moto[server] (a local S3-compatible server checking SigV4) plus boto3.
# Safe to run again: it installs only what is missing.
set -euo pipefail
. "$(dirname "$0")/lib/install.sh"
apt_install --no-recommends libzstd-dev zstd libvips-dev python3-pip
pip_install 'import moto, boto3, flask, werkzeug' 'moto[server]' boto3
