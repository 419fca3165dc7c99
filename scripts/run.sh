#!/usr/bin/env bash
# Runs the gateway on config.yaml with the embedded store (data/chat.db).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
swift build -c release --product chatgate
exec .build/release/chatgate serve --config "${CONFIG:-config.yaml}"
