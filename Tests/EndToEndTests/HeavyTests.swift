import Foundation
import Testing

/// Tests that load the machine for a minute (the Autobahn suite with its 16 MiB cases, the
/// frame fuzzer, thousands of idle connections): run alongside the rest on a 2-core machine
/// they would starve other tests' timeouts. `scripts/test.sh` runs them alone, one at a time,
/// after everything else (`CHATGATE_HEAVY_TESTS=1 swift test --no-parallel --filter …`).
enum HeavyTests {
    static let enabled = ProcessInfo.processInfo.environment["CHATGATE_HEAVY_TESTS"] == "1"
    static let reason = Comment(rawValue: "a heavy test: scripts/test.sh runs it alone after the others (set CHATGATE_HEAVY_TESTS=1)")
}
