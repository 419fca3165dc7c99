import Foundation
#if canImport(Glibc)
import Glibc
#endif
import GatewayTesting
import Testing

/// The real `chatgate` executable run as a child process, for tests that kill it.
final class ChildGateway: Sendable {
    let process: BackgroundProcess
    let configPath: String
    let publicPort: Int
    let adminPort: Int

    /// The debug build's binary, which `swift build --build-tests` produces next to the tests.
    static var binary: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent(".build/debug/chatgate")
    }

    /// Starts `chatgate serve --config configPath` and returns once it says it listens (within
    /// `timeout`: a start on PostgreSQL runs every migration on a fresh database first, slow on a
    /// loaded 2-core machine).
    static func start(configPath: String, environment: [String: String] = [:], timeout: Duration = .seconds(60)) async throws -> ChildGateway {
        var env = environment
        env["LOG_LEVEL"] = env["LOG_LEVEL"] ?? "info"
        let process = try await BackgroundProcess.start(binary.path, ["serve", "--config", configPath], environment: env)
        guard let line = await process.line(where: { $0.contains("listening") && $0.contains("public=") }, timeout: timeout) else {
            await process.kill()
            throw ChildError(description: "the gateway did not start listening: \(process.output)")
        }
        return ChildGateway(process: process, configPath: configPath, line: line)
    }

    private init(process: BackgroundProcess, configPath: String, line: String) {
        self.process = process
        self.configPath = configPath
        publicPort = Self.port(in: line, key: "public=")
        adminPort = Self.port(in: line, key: "admin=")
    }

    var pid: Int32 { process.pid ?? 0 }
    var isRunning: Bool { process.isRunning }

    static func port(in line: String, key: String) -> Int {
        guard let range = line.range(of: key) else { return 0 }
        let rest = line[range.upperBound...].prefix { $0 != " " }
        return Int(rest.split(separator: ":").last ?? "") ?? 0
    }

    var output: String { process.output }

    /// All it printed so far and whether it has exited, for tests that wait on its log.
    var seen: Observed<(log: String, exited: Bool)> { process.seen }

    func kill9() async {
        await process.kill()
    }

    /// SIGKILL now, without waiting for the exit (its runner task reaps it): for `defer`, which
    /// cannot await, so that a test that throws leaves no gateway running. Nothing once exited.
    func killNow() {
        process.signal(SIGKILL)
    }

    /// SIGTERM and wait: the graceful path. Returns the exit code (-1 when a signal ended it).
    func terminate() async -> Int32 {
        await process.stop(grace: .seconds(30)).exitCode
    }

    struct ChildError: Error, CustomStringConvertible {
        let description: String
    }
}
