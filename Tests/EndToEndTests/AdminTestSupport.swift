import Foundation
import GatewayCore
import GatewayTesting
import Logging
import Synchronization
import Testing

/// Python tools the admin tests drive: `prometheus_client`'s text parser and Selenium with
/// headless Chromium (scripts/setup-browser.sh installs them; `.ci/run` calls it).
enum PythonTools {
    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    /// Whether `CI` is set: missing tools then fail the tests instead of skipping them.
    static let isCI = !(ProcessInfo.processInfo.environment["CI"] ?? "").isEmpty

    static let hasPrometheusParser = canImport("prometheus_client.parser")
    static let hasBrowser: Bool = {
        let fm = FileManager.default
        let browser = ["/usr/bin/chromium", "/usr/bin/chromium-browser"].contains { fm.isExecutableFile(atPath: $0) }
        let driver = ["/usr/bin/chromedriver"].contains { fm.isExecutableFile(atPath: $0) }
        return browser && driver && canImport("selenium")
    }()

    static let missingParser = "python3 with prometheus_client is not installed: run scripts/setup-browser.sh"
    static let missingBrowser = "chromium, chromium-driver or python3 selenium is not installed: run scripts/setup-browser.sh"

    /// The repository's root (for scripts/ and artifacts/).
    static var root: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }

    private static func canImport(_ module: String) -> Bool {
        Command.succeeds("python3", ["-c", "import \(module)"])
    }

    /// Runs `python3 arguments…` with `input` on stdin; killed after `timeout` seconds.
    /// Output goes through files, so a large one cannot fill a pipe and stall the child.
    static func run(_ arguments: [String], input: String = "", timeout: Double = 120) async throws -> Result {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("chatgate-python-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let files = ["stdin", "stdout", "stderr"].map { directory.appendingPathComponent($0) }
        try Data(input.utf8).write(to: files[0])
        _ = FileManager.default.createFile(atPath: files[1].path, contents: nil)
        _ = FileManager.default.createFile(atPath: files[2].path, contents: nil)
        let status = try await Command.run(
            "python3", arguments, stdin: files[0].path, stdout: files[1].path, stderr: files[2].path, timeout: .seconds(timeout))
        let out = String(decoding: (try? Data(contentsOf: files[1])) ?? Data(), as: UTF8.self)
        let err = String(decoding: (try? Data(contentsOf: files[2])) ?? Data(), as: UTF8.self)
        return Result(status: status.exitCode, stdout: out, stderr: err)
    }

    /// One sample of a parsed exposition.
    struct Sample: Sendable {
        var family: String
        var type: String
        var name: String
        var labels: [String: String]
        var value: Double
    }

    static let parserScript = """
        import json, math, sys
        from prometheus_client.parser import text_string_to_metric_families
        out = []
        for family in text_string_to_metric_families(sys.stdin.read()):
            for s in family.samples:
                value = s.value
                out.append({"family": family.name, "type": family.type, "name": s.name, "labels": s.labels,
                            "value": "+Inf" if math.isinf(value) else repr(float(value))})
        print(json.dumps(out))
        """

    /// Parses Prometheus text with `prometheus_client`; throws (failing the test) when the
    /// parser rejects it.
    static func parseMetrics(_ text: String) async throws -> [Sample] {
        let result = try await run(["-c", parserScript], input: text)
        guard result.status == 0 else {
            throw ToolFailure(description: "prometheus_client rejected the exposition (exit \(result.status)):\n\(result.stderr)\n--- text ---\n\(text)")
        }
        guard case .array(let items) = try JSONParser.parse(result.stdout) else {
            throw ToolFailure(description: "unexpected parser output: \(result.stdout)")
        }
        return items.compactMap { item -> Sample? in
            guard let family = item["family"]?.stringValue, let type = item["type"]?.stringValue, let name = item["name"]?.stringValue,
                let valueText = item["value"]?.stringValue, let value = valueText == "+Inf" ? Double.infinity : Double(valueText)
            else { return nil }
            var labels: [String: String] = [:]
            for (key, value) in item["labels"]?.objectValue?.members ?? [] { labels[key] = value.stringValue }
            return Sample(family: family, type: type, name: name, labels: labels, value: value)
        }
    }
}

struct ToolFailure: Error, CustomStringConvertible {
    let description: String
}

extension Array where Element == PythonTools.Sample {
    /// The value of the sample named `name` whose labels include `labels`; nil when none.
    func value(_ name: String, _ labels: [String: String] = [:]) -> Double? {
        first { sample in sample.name == name && labels.allSatisfy { sample.labels[$0.key] == $0.value } }?.value
    }
}

/// Collects a gateway's log lines (message and metadata rendered as one string) so a test can
/// wait for one and check that none carries a secret.
final class LogCapture: Sendable {
    private struct Waiter {
        let id: Int
        let predicate: @Sendable (String) -> Bool
        let continuation: CheckedContinuation<Bool, Never>
    }

    private struct State {
        var lines: [String] = []
        var waiters: [Waiter] = []
        var nextID = 0
    }

    /// Guards the lines and the tests waiting for one.
    private let state = Mutex(State())

    var lines: [String] { state.withLock { $0.lines } }

    /// A logger at `level` writing here.
    func logger(level: Logger.Level = .debug) -> Logger {
        var logger = Logger(label: "admin-e2e") { _ in CapturingHandler(capture: self) }
        logger.logLevel = level
        return logger
    }

    func append(_ line: String) {
        let ready: [Waiter] = state.withLock { state in
            state.lines.append(line)
            let matched = state.waiters.filter { $0.predicate(line) }
            state.waiters.removeAll { waiter in matched.contains { $0.id == waiter.id } }
            return matched
        }
        for waiter in ready { waiter.continuation.resume(returning: true) }
    }

    /// Waits until a line satisfies `predicate` (at once if one has); false after `timeout`.
    func wait(timeout: Double = 10, for predicate: @escaping @Sendable (String) -> Bool) async -> Bool {
        await withCheckedContinuation { continuation in
            let id: Int? = state.withLock { state in
                if state.lines.contains(where: predicate) { return nil }
                state.nextID += 1
                state.waiters.append(Waiter(id: state.nextID, predicate: predicate, continuation: continuation))
                return state.nextID
            }
            guard let id else {
                continuation.resume(returning: true)
                return
            }
            DispatchQueue.global().asyncAfter(deadline: .now() + timeout) {
                let expired: Waiter? = self.state.withLock { state in
                    guard let index = state.waiters.firstIndex(where: { $0.id == id }) else { return nil }
                    return state.waiters.remove(at: index)
                }
                expired?.continuation.resume(returning: false)
            }
        }
    }
}

private struct CapturingHandler: LogHandler {
    let capture: LogCapture
    var metadata: Logger.Metadata = [:]
    var metadataProvider: Logger.MetadataProvider?
    var logLevel: Logger.Level = .trace

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var merged = metadata
        for (key, value) in event.metadata ?? [:] { merged[key] = value }
        let rendered = merged.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        capture.append("\(event.level) \(event.message) \(rendered)")
    }
}

extension TestGateway {
    /// `/admin/stats` once `condition` holds for it, polled until `timeout` of real time (then
    /// the last answer, for the test's own expectations to report).
    ///
    /// For counters bumped after the frame a test waits on went out: a WebSocket sender's ack
    /// is written by the committer right after its batch's deliveries, and only then does the
    /// session count the message in `messages_accepted` (`PendingSend.complete`), so a test
    /// that reads the stats as soon as it has the ack can find the count one short.
    func stats(until condition: @Sendable (JSONObject) -> Bool, timeout: Duration = .seconds(15)) async throws -> JSONObject {
        let deadline = ContinuousClock.now + timeout
        while true {
            let stats = try #require(try await request(.GET, "/admin/stats", token: AdminTests.token, admin: true).json)
            if condition(stats) || ContinuousClock.now >= deadline { return stats }
            try await Task.sleep(for: .milliseconds(10))
        }
    }
}
