import Foundation
import LocalProcess
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

    private init(pid: Int32, description: String, output: ChildOutput) {
        self.pid = pid
        self.description = description
        self.output = output
    }

    /// Starts `binary arguments…`, pinned to `cpu` with `taskset` when given; `ready` reads the
    /// ports from the line that says the server listens.
    ///
    /// It uses `posix_spawn` rather than Foundation's `Process`: the bench restarts the server
    /// while it holds 10,000+ sockets, and `Process.run()` was seen to crash in that state
    /// (a `memcpy` inside it, with thousands of descriptors open).
    static func launch(
        binary: String, arguments: [String], cpu: Int?, environment: [String: String] = [:],
        ready: @escaping @Sendable (String) -> (public: Int, admin: Int?)?
    ) throws -> ChildProcess {
        var argv = [binary] + arguments
        if let cpu, let taskset = findExecutable("taskset") { argv = [taskset, "-c", String(cpu)] + argv }
        var env = ProcessInfo.processInfo.environment
        for (key, value) in environment { env[key] = value }
        let output = ChildOutput(ready: ready)
        let (pid, readEnd) = try spawn(argv, environment: env.map { "\($0.key)=\($0.value)" })
        let child = ChildProcess(pid: pid, description: ([binary] + arguments).joined(separator: " "), output: output)
        Thread.detachNewThread {
            var chunk = [UInt8](repeating: 0, count: 16_384)
            while true {
                let count = chunk.withUnsafeMutableBytes { read(readEnd, $0.baseAddress, $0.count) }
                if count < 0, errno == EINTR { continue }
                if count <= 0 { break }
                output.append(chunk[0..<count])
            }
            close(readEnd)
        }
        Thread.detachNewThread {
            var status: Int32 = 0
            while waitpid(pid, &status, 0) < 0, errno == EINTR {}
            output.markExited()
        }
        return child
    }

    /// `posix_spawn` with stdin from /dev/null and stdout and stderr into a new pipe; returns
    /// the pid and the pipe's read end.
    static func spawn(_ argv: [String], environment: [String]) throws -> (pid_t, Int32) {
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw BenchError("pipe failed: errno \(errno)") }
        _ = fcntl(fds[0], F_SETFD, FD_CLOEXEC)
        _ = fcntl(fds[1], F_SETFD, FD_CLOEXEC)
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, fds[1], 1)
        posix_spawn_file_actions_adddup2(&actions, fds[1], 2)
        // The bench's other descriptors (NIO's sockets, these pipes) are close-on-exec.
        let cArgs = argv.map { strdup($0) } + [nil]
        let cEnv = environment.map { strdup($0) } + [nil]
        defer {
            for pointer in cArgs { free(pointer) }
            for pointer in cEnv { free(pointer) }
        }
        // The child starts with no signal blocked and every signal at its default action, as
        // `LocalProcess.run`'s do: a thread of a test process may block SIGTERM, which `stop`
        // sends first.
        var pid: pid_t = 0
        let result = LocalProcess.withDefaultSignals { attributes in posix_spawn(&pid, argv[0], &actions, attributes, cArgs, cEnv) }
        close(fds[1])
        guard result == 0 else {
            close(fds[0])
            throw BenchError("cannot start \(argv[0]): \(String(cString: strerror(result)))")
        }
        return (pid, fds[0])
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
