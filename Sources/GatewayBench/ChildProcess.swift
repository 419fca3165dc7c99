import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A server the bench runs as a child process (the gateway, or the raw relay baseline), so it
/// can be pinned to its own core and its memory and CPU read from `/proc` like any server's.
///
/// Its stdout and stderr are drained by a thread for as long as it runs (a full pipe would
/// block the server's logging), keeping the last lines for error messages; readiness is a
/// line the server prints once it listens.
final class ChildProcess: Sendable {
    let pid: Int32
    let description: String
    private let output: ChildOutput
    /// Guards the `Process` object, which Foundation does not declare `Sendable`.
    private let process: Mutex<Process>

    private init(pid: Int32, description: String, process: Process, output: ChildOutput) {
        self.pid = pid
        self.description = description
        self.process = Mutex(process)
        self.output = output
    }

    /// Starts `binary arguments…`, pinned to `cpu` with `taskset` when given; `ready` reads the
    /// ports from the line that says the server listens.
    static func launch(
        binary: String, arguments: [String], cpu: Int?, environment: [String: String] = [:],
        ready: @escaping @Sendable (String) -> (public: Int, admin: Int?)?
    ) throws -> ChildProcess {
        let process = Process()
        if let cpu, let taskset = findExecutable("taskset") {
            process.executableURL = URL(fileURLWithPath: taskset)
            process.arguments = ["-c", String(cpu), binary] + arguments
        } else {
            process.executableURL = URL(fileURLWithPath: binary)
            process.arguments = arguments
        }
        var env = ProcessInfo.processInfo.environment
        for (key, value) in environment { env[key] = value }
        process.environment = env
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        process.standardInput = FileHandle.nullDevice
        let output = ChildOutput(ready: ready)
        process.terminationHandler = { _ in output.markExited() }
        do {
            try process.run()
        } catch {
            throw BenchError("cannot start \(binary): \(error)")
        }
        try? pipe.fileHandleForWriting.close()
        let child = ChildProcess(
            pid: process.processIdentifier, description: ([binary] + arguments).joined(separator: " "), process: process, output: output)
        let reader = pipe.fileHandleForReading
        let fd = reader.fileDescriptor
        Thread.detachNewThread {
            var chunk = [UInt8](repeating: 0, count: 16_384)
            while true {
                let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                if count <= 0 { break }
                output.append(chunk[0..<count])
            }
            try? reader.close()
        }
        return child
    }

    /// Waits for the line that says the server listens; throws with its last output when it
    /// exits first or `timeout` passes.
    func waitUntilListening(timeout: Double) async throws -> (public: Int, admin: Int?) {
        let deadline = MonotonicClock.nanos() + UInt64(timeout * 1e9)
        while true {
            let (ports, exited, lines) = output.state.withLock { ($0.ports, $0.exited, $0.lines) }
            if let ports { return ports }
            if exited || MonotonicClock.nanos() > deadline {
                let why = exited ? "exited before listening" : "did not listen within \(Int(timeout)) s"
                throw BenchError("\(description) \(why):\n" + lines.suffix(15).joined(separator: "\n"))
            }
            try await Task.sleep(for: .milliseconds(5))
        }
    }

    var isRunning: Bool { !output.state.withLock { $0.exited } }

    /// The last lines it printed.
    var lastLines: [String] { output.state.withLock { $0.lines } }

    /// Sends `signal` (SIGTERM by default).
    func signal(_ signal: Int32 = SIGTERM) {
        kill(pid, signal)
    }

    /// SIGTERM, then SIGKILL if it has not exited within `grace` seconds; returns once it has,
    /// and whether it had to be killed.
    @discardableResult
    func stop(grace: Double = 10) async -> Bool {
        guard isRunning else { return false }
        signal(SIGTERM)
        await waitForExit(timeout: grace)
        guard isRunning else { return false }
        signal(SIGKILL)
        await waitForExit(timeout: 5)
        return true
    }

    func waitForExit(timeout: Double) async {
        let deadline = MonotonicClock.nanos() + UInt64(timeout * 1e9)
        while isRunning, MonotonicClock.nanos() < deadline {
            try? await Task.sleep(for: .milliseconds(5))
        }
    }

    /// A snapshot of its memory and CPU.
    func sample() -> ProcessSample? {
        ProcessSample.read(pid: pid)
    }

    /// `PATH` lookup.
    static func findExecutable(_ name: String) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        for directory in path.split(separator: ":") {
            let candidate = "\(directory)/\(name)"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }
}

/// A child's output and exit, shared by its reader thread, its termination handler and the
/// bench.
final class ChildOutput: Sendable {
    struct State {
        var lines: [String] = []
        var partial: [UInt8] = []
        var ports: (public: Int, admin: Int?)?
        var exited = false
    }

    /// Guards the last lines, the partial line, the ports read and the exit flag.
    let state = Mutex(State())
    private let ready: @Sendable (String) -> (public: Int, admin: Int?)?

    init(ready: @escaping @Sendable (String) -> (public: Int, admin: Int?)?) {
        self.ready = ready
    }

    func append(_ bytes: ArraySlice<UInt8>) {
        state.withLock { state in
            state.partial.append(contentsOf: bytes)
            while let newline = state.partial.firstIndex(of: UInt8(ascii: "\n")) {
                let line = String(decoding: state.partial[..<newline], as: UTF8.self)
                state.partial.removeSubrange(...newline)
                if state.ports == nil, let ports = ready(line) { state.ports = ports }
                state.lines.append(line)
                if state.lines.count > 200 { state.lines.removeFirst(100) }
            }
        }
    }

    func markExited() {
        state.withLock { $0.exited = true }
    }
}
