import Foundation
import GatewayTesting
import GatewayCore
import Testing

/// The Autobahn TestSuite's fuzzingclient cases (run by PyPI `kosoku`, scripts/autobahn.py)
/// against `/v1/echo` of a gateway this test starts: every case must pass (OK, NON-STRICT or
/// INFORMATIONAL). The 12.x and 13.x groups (permessage-deflate, which the gateway does not
/// negotiate) are skipped; `CHATGATE_AUTOBAHN_QUICK=1` also skips 9.x (performance, ~40 s).
@Suite("Autobahn TestSuite on /v1/echo")
struct AutobahnTests {
    static let hasKosoku = PythonTools.canImportModule("kosoku")
    static let missing = "python3 with kosoku is not installed: run scripts/setup-reliab.sh"

    @Test(.enabled(if: HeavyTests.enabled, HeavyTests.reason), .enabled(if: hasKosoku || PythonTools.isCI, Comment(rawValue: missing)), .timeLimit(.minutes(10)))
    func everyCasePasses() async throws {
        try #require(Self.hasKosoku, Comment(rawValue: Self.missing))
        // 16 MiB frames, as the 9.x cases send when they run.
        let gateway = try await TestGateway.start(extra: "debug: { echo_endpoint: true }\nlimits: { max_frame_bytes: 16777216 }")
        let script = PythonTools.root.appendingPathComponent("scripts/autobahn.py").path
        var arguments = [script, "ws://127.0.0.1:\(gateway.port)/v1/echo", "--concurrency", "2"]
        let quick = ProcessInfo.processInfo.environment["CHATGATE_AUTOBAHN_QUICK"] == "1"
        if quick { arguments.append("--quick") }
        let run = try await PythonTools.run(arguments, timeout: 540)
        await gateway.stop()
        let line = try #require(
            run.stdout.split(separator: "\n").last { $0.hasPrefix("AUTOBAHN ") }, "no summary (exit \(run.status)):\n\(run.stdout)\n\(run.stderr.suffix(2000))")
        let summary = try #require(try JSONParser.parse(String(line.dropFirst("AUTOBAHN ".count))).objectValue)
        let cases = summary["cases"]?.int64Value ?? 0
        let failed = summary["failed"]?.int64Value ?? -1
        #expect(cases >= (quick ? 240 : 300), "only \(cases) cases ran: \(line.prefix(500))")
        #expect(failed == 0, "failed cases: \(summary["failures"]?.jsonText ?? "?")")
        #expect(run.status == 0, "scripts/autobahn.py exit \(run.status): \(run.stderr.suffix(2000))")
        // The cases this branch fixed: a 1-byte close payload (1002), a non-UTF-8 reason (1007).
        let failures = summary["failures"]?.arrayValue ?? []
        #expect(!failures.contains { ["7.3.2", "7.5.1"].contains($0["case"]?.stringValue ?? "") })
        print("autobahn: \(cases) cases, \(summary["passed"]?.int64Value ?? 0) passed, verdicts \(summary["behaviors"]?.jsonText ?? "{}"), non-strict \(summary["non_strict"]?.jsonText ?? "[]"), passed on a retry \(summary["retried"]?.jsonText ?? "[]"), \(summary["seconds"]?.jsonText ?? "?") s")
    }
}

extension PythonTools {
    /// Whether `python3 -c "import <module>"` succeeds.
    static func canImportModule(_ module: String) -> Bool {
        Command.succeeds("python3", ["-c", "import \(module)"])
    }
}
