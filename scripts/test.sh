#!/usr/bin/env bash
# Runs every test: unit, stage, transport and end-to-end (real sockets, real SQLite files,
# the real executable as a child process, the admin dashboard in headless Chromium), then
# follows docs/STAGES.md as a new user would (scripts/check-stage-docs.sh).
# Installs what it needs first (system libraries, Chromium, Selenium, prometheus_client).
# Arguments go to `swift test` (e.g. --filter ChatTests) and skip the guide check.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/setup-media.sh
scripts/setup-browser.sh
scripts/setup-push.sh
scripts/setup-clients.sh
scripts/setup-postgres.sh && export CHATGATE_REQUIRE_POSTGRES=1
scripts/setup-reliab.sh
swift build --build-tests
if (($#)); then
  exec swift test --skip-build "$@"
fi
# Suites that run child gateways, browsers or real-time timers: on a 2-core machine they are
# starved (and their timeouts fire) when everything runs at once, so they run after the rest,
# one test at a time.
isolated='AdminBrowserTests|DemoBrowserTests|ChatClientTests|ChatCommandTests|DurabilityTests|ChurnMemoryTests|EndToEndTests\.PushTests|PostgresRestartTests|PresenceTests|SessionTimerTests|TLSTests|ClusterLeaseTests|ClusterBusTests|ClusterBusRecordTests|ClusterClientTests|ClusterFailoverTests|EndToEndTests\.AdminTests'
swift test --skip-build --skip "$isolated"
swift test --skip-build --no-parallel --filter "$isolated"
# The heavy reliability tests (Autobahn, the frame fuzzer, idle connections), alone and one at a time.
CHATGATE_HEAVY_TESTS=1 swift test --skip-build --no-parallel --filter 'AutobahnTests|FrameFuzzTests|thousandsOfIdleConnections'
scripts/check-stage-docs.sh
