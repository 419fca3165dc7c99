#!/usr/bin/env bash
# Runs every test: unit, stage, transport and end-to-end (real sockets, real SQLite files,
# the real executable as a child process, the admin dashboard in headless Chromium).
# Installs what it needs first (system libraries, Chromium, Selenium, prometheus_client).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/setup-browser.sh
swift build --build-tests
swift test --skip-build "$@"
