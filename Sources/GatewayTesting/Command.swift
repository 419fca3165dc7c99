import Foundation
import LocalProcess
import Subprocess
import Synchronization
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// Runs the programs tests need (tmux, openssl, python3, the `chatgate` binary) through
/// swift-subprocess.
///
/// Not Foundation's `Process`: in a test process its exit monitoring depends on a `SIGCHLD`
/// that can be lost (the main thread of a Swift Testing run waits in `sigsuspend` with every
/// signal unblocked, so the kernel may hand the signal to it, where it is ignored). A child
/// whose `SIGCHLD` was lost stays a zombie and `waitUntilExit` never returns: CI stalled that
/// way in `ChatCommandTests`. swift-subprocess watches each child through a pidfd, which
/// needs no signal.
public enum Command {
    /// What a finished program left: its status and what it printed.
    public struct Result: Sendable {
        public let status: TerminationStatus
        public let output: String
        public let error: String

        public var succeeded: Bool { status.isSuccess }
    }

    /// Runs `executable` (a path, or a name looked up in `PATH`) to its end, with `input` on
    /// its stdin; cancelled (SIGTERM, then SIGKILL) after `timeout`.
    public static func run(
        _ executable: String, _ arguments: [String], input: String? = nil,
        environment: [String: String] = [:], directory: String? = nil,
        timeout: Duration = .seconds(120), outputLimit: Int = 16 << 20
    ) async throws -> Result {
        let configuration = Configuration(
            executable: executable.hasPrefix("/") ? .path(FilePath(executable)) : .name(executable),
            arguments: Arguments(arguments),
            environment: environment.isEmpty ? .inherit : .inherit.updating(Self.keys(environment)),
            workingDirectory: directory.map { FilePath($0) }
        )
        return try await withThrowingTaskGroup(of: Result?.self) { group in
            group.addTask {
                let result = try await Subprocess.run(
                    configuration, input: .string(input ?? ""), output: .string(limit: outputLimit), error: .string(limit: outputLimit))
                return Result(status: result.terminationStatus, output: result.standardOutput, error: result.standardError)
            }
            group.addTask {
                try await Task.sleep(for: timeout)
                return nil
            }
            defer { group.cancelAll() }
            guard let result = try await group.next() ?? nil else {
                throw CommandError(description: "\(executable) \(arguments.joined(separator: " ")) did not finish within \(timeout)")
            }
            return result
        }
    }

    /// Runs `executable arguments…` to its end with stdin, stdout and stderr on files, through
    /// `/bin/sh -c 'exec …'`, so no pipe of ours reaches the program or what it starts (a
    /// browser a Python script drives may outlive it for a moment); cancelled after `timeout`.
    public static func run(
        _ executable: String, _ arguments: [String], stdin: String, stdout: String, stderr: String, timeout: Duration
    ) async throws -> TerminationStatus {
        let script = #"exec "$0" "$@" <"$CHATGATE_IN" >"$CHATGATE_OUT" 2>"$CHATGATE_ERR""#
        let result = try await run(
            "/bin/sh", ["-c", script, executable] + arguments,
            environment: ["CHATGATE_IN": stdin, "CHATGATE_OUT": stdout, "CHATGATE_ERR": stderr], timeout: timeout)
        return result.status
    }

    /// Whether `executable arguments…` runs and exits with 0, for the conditions of
    /// `.enabled(if:)` traits (synchronous): spawned with `posix_spawn` and reaped with
    /// `waitpid` on that one pid, output to /dev/null.
    public static func succeeds(_ executable: String, _ arguments: [String]) -> Bool {
        (try? runBlocking(executable, arguments, outputPath: "/dev/null")) == 0
    }

    /// Runs a program to its end from synchronous code and returns its exit status (128 + the
    /// signal's number when a signal ended it). Its stdout and stderr go to `outputPath`; stdin is
    /// /dev/null. `waitpid` on the child's pid returns however busy the process's threads are
    /// and needs no signal.
    public static func runBlocking(_ executable: String, _ arguments: [String], outputPath: String) throws -> Int32 {
        guard let path = resolve(executable) else { throw CommandError(description: "\(executable) is not installed") }
        return try LocalProcess.run(path, arguments, outputPath: outputPath)
    }

    /// An absolute path as it is, or a name looked up in `PATH`.
    public static func resolve(_ executable: String) -> String? {
        if executable.hasPrefix("/") {
            return FileManager.default.isExecutableFile(atPath: executable) ? executable : nil
        }
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        return path.split(separator: ":").map { "\($0)/\(executable)" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    static func keys(_ environment: [String: String]) -> [Environment.Key: String?] {
        Dictionary(uniqueKeysWithValues: environment.map { (Environment.Key(stringLiteral: $0.key), Optional($0.value)) })
    }
}

extension TerminationStatus {
    /// The exit code, or 128 + the signal's number when a signal ended the program (as a
    /// shell reports it), so a crash (139: SIGSEGV, 134: SIGABRT) can be told from a kill (137).
    public var exitCode: Int32 {
        switch self {
        case .exited(let code): code
        case .signaled(let signal): 128 + signal
        }
    }
}

public struct CommandError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(description: String) { self.description = description }
}

/// A program that runs beside a test (a gateway, a Python server) until the test stops it:
/// its output is kept (the last 2,000 lines), its exit is known without a signal (see
/// `Command`), and `stop`/`kill` end it.
public final class BackgroundProcess: Sendable {
    private struct State {
        var pid: pid_t?
        var lines: [String] = []
        var status: TerminationStatus?
        var waiters: [CheckedContinuation<Void, Never>] = []
        var lineWaiters: [(id: Int, predicate: @Sendable (String) -> Bool, continuation: CheckedContinuation<String?, Never>)] = []
        var nextWaiter = 0
    }

    /// Guards the pid, the output kept, the exit status and who waits for what.
    private let state = Mutex(State())
    /// All it printed so far and whether it has exited, for tests that wait on its output.
    public let seen = Observed((log: "", exited: false))
    private let runner = Mutex<Task<Void, Never>?>(nil)
    public let description: String

    private init(description: String) {
        self.description = description
    }

    /// Starts `executable arguments…` with stdin from /dev/null, stdout and stderr together
    /// into the kept output. Returns once it runs.
    public static func start(_ executable: String, _ arguments: [String], environment: [String: String] = [:]) async throws -> BackgroundProcess {
        let process = BackgroundProcess(description: ([executable] + arguments).joined(separator: " "))
        let configuration = Configuration(
            executable: executable.hasPrefix("/") ? .path(FilePath(executable)) : .name(executable),
            arguments: Arguments(arguments),
            environment: environment.isEmpty ? .inherit : .inherit.updating(Command.keys(environment))
        )
        let started: AsyncStream<Result<pid_t, any Error>> = AsyncStream { continuation in
            let task = Task {
                do {
                    let result = try await Subprocess.run(configuration, input: .none, output: .sequence, error: .combinedWithOutput) { execution in
                        continuation.yield(.success(execution.processIdentifier.value))
                        continuation.finish()
                        for try await line in execution.standardOutput.strings() {
                            process.append(line)
                        }
                    }
                    process.finish(result.terminationStatus)
                } catch {
                    continuation.yield(.failure(error))
                    continuation.finish()
                    process.finish(.exited(-1))
                }
            }
            process.runner.withLock { $0 = task }
        }
        for await outcome in started {
            let pid = try outcome.get()
            process.state.withLock { $0.pid = pid }
            return process
        }
        throw CommandError(description: "\(executable) did not start")
    }

    public var pid: pid_t? { state.withLock { $0.pid } }

    /// Everything it printed so far (the last 2,000 lines).
    public var output: String { state.withLock { $0.lines.joined(separator: "\n") } }

    public var isRunning: Bool { state.withLock { $0.status == nil } }

    /// Its exit status once it has exited.
    public var status: TerminationStatus? { state.withLock { $0.status } }

    /// The first line it printed (or prints) that satisfies `predicate`; nil when it exits
    /// first or `timeout` passes.
    public func line(where predicate: @escaping @Sendable (String) -> Bool, timeout: Duration = .seconds(30)) async -> String? {
        let id = state.withLock { state in
            state.nextWaiter += 1
            return state.nextWaiter
        }
        let waiter = Task {
            await withCheckedContinuation { (continuation: CheckedContinuation<String?, Never>) in
                let resumeNow: String?? = state.withLock { state in
                    if let line = state.lines.first(where: predicate) { return .some(line) }
                    if state.status != nil { return .some(nil) }
                    state.lineWaiters.append((id, predicate, continuation))
                    return nil
                }
                if let resumeNow { continuation.resume(returning: resumeNow) }
            }
        }
        let timer = Task {
            try? await Task.sleep(for: timeout)
            guard !Task.isCancelled else { return }
            self.releaseLineWaiter(id)
        }
        let line = await waiter.value
        timer.cancel()
        return line
    }

    /// Sends `signal` while it runs.
    public func signal(_ signal: Int32) {
        state.withLock { state in
            if state.status == nil, let pid = state.pid { _ = Glibc.kill(pid, signal) }
        }
    }

    /// SIGKILL, and waits for the exit.
    public func kill() async {
        signal(SIGKILL)
        await waitForExit()
    }

    /// SIGTERM and waits up to `grace` for the exit, then SIGKILL; returns the status.
    @discardableResult
    public func stop(grace: Duration = .seconds(10)) async -> TerminationStatus {
        signal(SIGTERM)
        let killer = Task {
            try? await Task.sleep(for: grace)
            guard !Task.isCancelled else { return }
            self.signal(SIGKILL)
        }
        await waitForExit()
        killer.cancel()
        return status ?? .exited(-1)
    }

    /// Returns once it has exited (and has been reaped).
    public func waitForExit() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let exited = state.withLock { state in
                if state.status != nil { return true }
                state.waiters.append(continuation)
                return false
            }
            if exited { continuation.resume() }
        }
    }

    /// Keeps `line`, then tells `seen`: whoever wakes on `seen` finds the line in `output` too.
    private func append(_ line: String) {
        let matched: [(CheckedContinuation<String?, Never>)] = state.withLock { state in
            state.lines.append(line)
            if state.lines.count > 2_000 { state.lines.removeFirst(1_000) }
            var matched: [CheckedContinuation<String?, Never>] = []
            state.lineWaiters.removeAll { waiter in
                guard waiter.predicate(line) else { return false }
                matched.append(waiter.continuation)
                return true
            }
            return matched
        }
        seen.update { $0.log += line + "\n" }
        for continuation in matched { continuation.resume(returning: line) }
    }

    private func finish(_ status: TerminationStatus) {
        let (waiters, lineWaiters) = state.withLock { state in
            state.status = state.status ?? status
            defer {
                state.waiters = []
                state.lineWaiters = []
            }
            return (state.waiters, state.lineWaiters.map(\.continuation))
        }
        seen.update { $0.exited = true }
        for waiter in waiters { waiter.resume() }
        for waiter in lineWaiters { waiter.resume(returning: nil) }
    }

    private func releaseLineWaiter(_ id: Int) {
        let waiter = state.withLock { state in
            state.lineWaiters.firstIndex { $0.id == id }.map { state.lineWaiters.remove(at: $0).continuation }
        }
        waiter?.resume(returning: nil)
    }
}
