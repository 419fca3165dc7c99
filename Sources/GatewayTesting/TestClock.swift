import GatewayCore
import Synchronization

/// A clock tests set and step by hand, backwards included; a task sleeping on it
/// (`sleep(until:)`) wakes when a step moves time to or past its deadline, never because real
/// time passed.
///
/// ```swift
/// let run = Task { await pipeline.run(&envelope) }      // a stage with timeout_ms: 500
/// try await clock.waitForTimer(at: clock.nowMillis() + 500)
/// clock.advance(by: 500)                                // the deadline fires
/// ```
public final class TestClock: GatewayClock, Sendable {
    struct Sleeper {
        let id: UInt64
        let deadline: Int64
        let continuation: CheckedContinuation<Void, any Error>
    }

    struct Watcher {
        let id: UInt64
        let deadline: Int64
        let continuation: CheckedContinuation<Void, any Error>
    }

    struct State {
        var now: Int64
        var nextID: UInt64 = 0
        var sleepers: [Sleeper] = []
        /// Tests waiting for a sleeper at a deadline (`waitForTimer(at:)`).
        var watchers: [Watcher] = []
    }

    /// Guards the current time in milliseconds, the sleeping tasks and the tests waiting for them.
    private let state: Mutex<State>

    public init(millis: Int64 = 1_767_225_600_000) {  // 2026-01-01T00:00:00Z
        state = Mutex(State(now: millis))
    }

    public func nowMillis() -> Int64 { state.withLock { $0.now } }

    /// Sets the time; sleeps due by then wake.
    public func set(_ millis: Int64) { step { $0 = millis } }

    /// Moves the time by `millis`; sleeps due by then wake.
    public func advance(by millis: Int64) { step { $0 += millis } }

    /// The deadlines of the sleeps not yet woken, earliest first.
    public var pendingDeadlines: [Int64] { state.withLock { $0.sleepers.map(\.deadline).sorted() } }

    /// How many sleeps wait for exactly `deadline`.
    public func pendingTimers(at deadline: Int64) -> Int { state.withLock { $0.sleepers.filter { $0.deadline == deadline }.count } }

    /// The error of `waitForTimer(at:timeout:)`.
    public struct Timeout: Error, CustomStringConvertible {
        public let description: String
    }

    /// Returns once a sleep is pending for exactly `deadline`: how a test learns that the code
    /// under test waits, before it steps the clock. Throws `Timeout` after `timeout` of real
    /// time (a bound on a failing test, never a wait the test relies on).
    public func waitForTimer(at deadline: Int64, timeout: Duration = .seconds(10)) async throws {
        let id = state.withLock { state -> UInt64 in
            state.nextID &+= 1
            return state.nextID
        }
        let bound = Task { [weak self] in
            try await Task.sleep(for: timeout)
            let watcher: Watcher? = self?.state.withLock { state in
                guard let index = state.watchers.firstIndex(where: { $0.id == id }) else { return nil }
                return state.watchers.remove(at: index)
            }
            watcher?.continuation.resume(throwing: Timeout(description: "no timer at \(deadline) within \(timeout)"))
        }
        defer { bound.cancel() }
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let ready = state.withLock { state -> Bool in
                if state.sleepers.contains(where: { $0.deadline == deadline }) { return true }
                state.watchers.append(Watcher(id: id, deadline: deadline, continuation: continuation))
                return false
            }
            if ready { continuation.resume() }
        }
    }

    public func sleep(until deadline: Int64) async throws {
        let id = state.withLock { state -> UInt64 in
            state.nextID &+= 1
            return state.nextID
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                enum Start { case wait([Watcher]), due, cancelled }
                let start: Start = state.withLock { state in
                    // The flag is set before the cancellation handler runs, so a sleep checked
                    // here either sees it or is removed by the handler.
                    if Task.isCancelled { return .cancelled }
                    if state.now >= deadline { return .due }
                    state.sleepers.append(Sleeper(id: id, deadline: deadline, continuation: continuation))
                    let ready = state.watchers.filter { $0.deadline == deadline }
                    state.watchers.removeAll { $0.deadline == deadline }
                    return .wait(ready)
                }
                switch start {
                case .wait(let watchers): for watcher in watchers { watcher.continuation.resume() }
                case .due: continuation.resume()
                case .cancelled: continuation.resume(throwing: CancellationError())
                }
            }
        } onCancel: {
            let cancelled: Sleeper? = state.withLock { state in
                guard let index = state.sleepers.firstIndex(where: { $0.id == id }) else { return nil }
                return state.sleepers.remove(at: index)
            }
            cancelled?.continuation.resume(throwing: CancellationError())
        }
    }

    private func step(_ change: (inout Int64) -> Void) {
        let due: [Sleeper] = state.withLock { state in
            change(&state.now)
            let now = state.now
            let due = state.sleepers.filter { $0.deadline <= now }.sorted { ($0.deadline, $0.id) < ($1.deadline, $1.id) }
            state.sleepers.removeAll { $0.deadline <= now }
            return due
        }
        for sleeper in due { sleeper.continuation.resume() }
    }
}
