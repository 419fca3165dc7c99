#!/usr/bin/env bash
# Runs every test: unit, stage, transport and end-to-end (real sockets, real SQLite files,
# the real executable as a child process, the admin dashboard in headless Chromium), then
# follows docs/STAGES.md as a new user would (scripts/check-stage-docs.sh).
# Installs what it needs first (system libraries, Chromium, Selenium, prometheus_client).
# Arguments go to `swift test` (e.g. --filter ChatTests) and skip the guide check.
set -euo pipefail
cd "$(dirname "$0")/.."
# CI runs with no standard input at all; give every child a real one.
exec </dev/null
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
isolated='AdminBrowserTests|DemoBrowserTests|ChatClientTests|ChatCommandTests|DurabilityTests|ChurnMemoryTests|EndToEndTests\.PushTests|PostgresRestartTests|PostgresOutageTests|TLSTests|ClusterLeaseTests|ClusterBusTests|ClusterBusRecordTests|ClusterClientTests|ClusterFailoverTests|ClusterLongPollFailoverTests|ClientDiscoverBrowserTests|EndToEndTests\.AdminTests'
# `phase SECONDS swift-test-arguments…`: one `swift test` run with a watchdog. SwiftPM prints a
# run's output only when it ends, so a run that hangs would show nothing until CI's own limit:
# past SECONDS the watchdog prints what runs (and each test thread's stack when gdb is
# there), then ends the run, which fails the phase.
phase() {
  local limit=$1 waited=0
  shift
  swift test --skip-build "$@" &
  local run=$!
  (
    while kill -0 "$run" 2>/dev/null; do
      sleep 5
      waited=$((waited + 5))
      if ((waited >= limit)); then
        echo "test phase still running after ${limit} s: swift test $*" >&2
        ps -ef --forest >&2 || true
        for pid in $(pgrep -f 'PackageTests.xctest' || true); do
          if command -v gdb >/dev/null; then
            gdb -p "$pid" -batch -ex 'thread apply all bt 12' 2>/dev/null | grep -E '^(#|Thread)' | cut -c1-220 >&2 || true
          fi
        done
        pkill -TERM -f 'PackageTests.xctest' || true
        kill -TERM "$run" 2>/dev/null || true
        break
      fi
    done
  ) &
  local watchdog=$!
  local status=0
  wait "$run" || status=$?
  wait "$watchdog" 2>/dev/null || true
  return "$status"
}
phase 900 --skip "$isolated"
phase 1200 --no-parallel --filter "$isolated"
# The single-node behaviour suites again, every gateway on PostgreSQL (StoreBackend.default):
# the same tests on both backends (the cluster suites already run on PostgreSQL).
onboth='EndToEndTests\.(AdminTests|PushTests)|ChatClientTests|ChatCommandTests|TLSTests|ChurnMemoryTests|AdminBrowserTests|DemoBrowserTests'
CHATGATE_TEST_STORE=postgres phase 900 --filter EndToEndTests --skip "$isolated"
CHATGATE_TEST_STORE=postgres phase 900 --no-parallel --filter "$onboth"
# The heavy reliability tests (Autobahn, the frame fuzzer, idle connections), alone and one at a time.
export CHATGATE_HEAVY_TESTS=1
phase 1200 --no-parallel --filter 'AutobahnTests|FrameFuzzTests|thousandsOfIdleConnections'
scripts/check-stage-docs.sh
