import Foundation
import GatewayTesting
import Testing

/// The real `chatgate` executable run as a child process, for tests that kill it.
final class ChildGateway: @unchecked Sendable {
    /// What the child wrote to stderr so far, and whether it has exited: tests wait on it.
    let seen = Observed((log: "", exited: false))
    // Written once, before `start` returns.
    private(set) var publicPort = 0
    private(set) var adminPort = 0
    let process: Process
    let configPath: String

    /// The debug build's binary, which `swift build --build-tests` produces next to the tests.
    static var binary: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent(".build/debug/chatgate")
    }

    static func start(configPath: String, environment: [String: String] = [:]) async throws -> ChildGateway {
        let child = ChildGateway(configPath: configPath, environment: environment)
        try await child.waitUntilListening()
        return child
    }

    private init(configPath: String, environment: [String: String]) {
        self.configPath = configPath
        process = Process()
        process.executableURL = Self.binary
        process.arguments = ["serve", "--config", configPath]
        var env = ProcessInfo.processInfo.environment
        env["LOG_LEVEL"] = "info"
        for (key, value) in environment { env[key] = value }
        process.environment = env
    }

    private func waitUntilListening(timeout: Double = 30) async throws {
        let pipe = Pipe()
        process.standardError = pipe
        process.standardOutput = FileHandle.nullDevice
        pipe.fileHandleForReading.readabilityHandler = { [weak self] handle in
            let data = handle.availableData
            guard let self, !data.isEmpty else { return }
            self.seen.update { $0.log += String(decoding: data, as: UTF8.self) }
        }
        let seen = self.seen
        process.terminationHandler = { _ in seen.update { $0.exited = true } }
        try process.run()
        @Sendable func listening(_ log: String) -> Substring? {
            log.split(separator: "\n").first { $0.contains("listening") && $0.contains("public=") }
        }
        _ = await seen.wait(timeout: .milliseconds(Int(timeout * 1000))) { listening($0.log) != nil || $0.exited }
        guard let line = listening(seen.value.log) else {
            throw ChildError(description: "the gateway did not start listening: \(seen.value.log)")
        }
        publicPort = Self.port(in: String(line), key: "public=")
        adminPort = Self.port(in: String(line), key: "admin=")
    }

    static func port(in line: String, key: String) -> Int {
        guard let range = line.range(of: key) else { return 0 }
        let rest = line[range.upperBound...].prefix { $0 != " " }
        return Int(rest.split(separator: ":").last ?? "") ?? 0
    }

    var output: String { seen.value.log }

    func kill9() async {
        kill(process.processIdentifier, SIGKILL)
        await waitForExit()
    }

    /// SIGTERM and wait: the graceful path.
    func terminate() async -> Int32 {
        process.terminate()
        await waitForExit()
        return process.terminationStatus
    }

    /// Waits on a thread of its own: blocking one of the few cooperative-pool threads would
    /// stall every in-process gateway of the tests running alongside.
    private func waitForExit() async {
        let process = self.process
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            Thread {
                process.waitUntilExit()
                continuation.resume()
            }.start()
        }
    }

    struct ChildError: Error, CustomStringConvertible {
        let description: String
    }
}
