#!/usr/bin/env bash
# Runs every test: unit, stage, transport and end-to-end (real sockets, real SQLite files,
# the real executable as a child process).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
swift build --build-tests
swift test --skip-build "$@"
