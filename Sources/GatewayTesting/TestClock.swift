import GatewayCore
import NIOCore
import Synchronization

/// A clock tests set and step by hand, backwards included; its timers fire when a step moves
/// time to or past their deadline, never because real time passed.
///
/// Hand it to the gateway (`Bootstrap.make(clock:)`, `TestGateway.start(clock:)`, a
/// `StageHarness`) and every timer the gateway keeps (the heartbeat sweep, the auth timeout,
/// token deadlines, presence grace, long-poll waits and expiry, push retries) waits for the test:
///
/// ```swift
/// let clock = TestClock()
/// let gateway = try await TestGateway.start(clock: clock)
/// ...
/// // alice's last session closed: the gateway now waits grace_ms before saying she is offline.
/// try await clock.waitForTimer(at: clock.nowMillis() + 300)
/// clock.advance(by: 299)   // nothing yet
/// clock.advance(by: 1)     // the offline event goes out
/// ```
///
/// A timer on an event loop runs there (`EventLoop.execute`); a sleeping task is resumed. A
/// timer whose deadline has already passed when it is scheduled fires at once. `advance(by:)`
/// returns as soon as the due timers are handed to their loops; `advanceAndWait(by:)` returns
/// once they have run. `Sendable`: everything is behind one lock.
public final class TestClock: GatewayClock, Sendable {
    private enum Action {
        case run(any EventLoop, @Sendable () -> Void)
        case wake(Sleeper)
    }

    private struct Pending {
        let deadline: Int64
        let action: Action
    }

    private struct Waiter {
        let id: UInt64
        let deadline: Int64
        let continuation: CheckedContinuation<Void, any Error>
    }

    private struct State {
        var now: Int64
        /// Timers not yet fired, by id (ids grow: their order breaks ties between deadlines).
        var pending: [UInt64: Pending] = [:]
        var nextID: UInt64 = 0
        /// Tests waiting for a timer at a deadline (`waitForTimer(at:)`).
        var waiters: [Waiter] = []
    }

    /// Guards the time, the pending timers and the waiting tests.
    private let state: Mutex<State>

    public init(millis: Int64 = 1_767_225_600_000) {  // 2026-01-01T00:00:00Z
        state = Mutex(State(now: millis))
    }

    public func nowMillis() -> Int64 { state.withLock { $0.now } }

    /// Sets the time; timers due by then fire. Setting it back fires nothing.
    public func set(_ millis: Int64) {
        fire(state.withLock { state in
            state.now = millis
            return Self.takeDue(&state)
        })
    }

    /// Moves the time by `millis` (negative moves it back); timers due by then fire, in deadline
    /// order, and are handed to their event loops before this returns.
    public func advance(by millis: Int64) {
        fire(state.withLock { state in
            state.now += millis
            return Self.takeDue(&state)
        })
    }

    /// `advance(by:)`, then waits until every event-loop timer it fired has run (a timer those
    /// schedule in turn is not waited for; a sleeping task is only resumed).
    public func advanceAndWait(by millis: Int64) async throws {
        let due = state.withLock { state in
            state.now += millis
            return Self.takeDue(&state)
        }
        var runs: [EventLoopFuture<Void>] = []
        for pending in due {
            switch pending.action {
            case .run(let loop, let task): runs.append(loop.submit(task))
            case .wake(let sleeper): sleeper.finish(nil)
            }
        }
        for run in runs { try await run.get() }
    }

    /// The deadlines of the timers not yet fired, earliest first.
    public var pendingDeadlines: [Int64] {
        state.withLock { $0.pending.values.map(\.deadline).sorted() }
    }

    /// How many timers wait for exactly `deadline`.
    public func pendingTimers(at deadline: Int64) -> Int {
        state.withLock { $0.pending.values.filter { $0.deadline == deadline }.count }
    }

    /// Returns once a timer is pending for exactly `deadline`: how a test learns that the
    /// gateway has reached the point where it waits (a session closed, a poll began) before it
    /// steps the clock. Throws `TestClock.Timeout` after `timeout` of real time (a bound on a
    /// failing test, never a wait the test relies on).
    public func waitForTimer(at deadline: Int64, timeout: Duration = .seconds(10)) async throws {
        let found = try await withThrowingTaskGroup(of: Bool.self) { group in
            group.addTask {
                try await self.timerPending(at: deadline)
                return true
            }
            group.addTask {
                try await Task.sleep(for: timeout)
                return false
            }
            defer { group.cancelAll() }
            return try await group.next() ?? false
        }
        guard found else {
            throw Timeout(description: "no timer for \(deadline) within \(timeout); pending: \(pendingDeadlines), now \(nowMillis())")
        }
    }

    /// The error of `waitForTimer(at:timeout:)`.
    public struct Timeout: Error, CustomStringConvertible {
        public let description: String
    }

    // MARK: GatewayClock

    public func schedule(at deadline: Int64, on eventLoop: any EventLoop, _ task: @escaping @Sendable () -> Void) -> ClockTimer {
        let id = state.withLock { state -> UInt64? in
            guard deadline > state.now else { return nil }
            return Self.add(Pending(deadline: deadline, action: .run(eventLoop, task)), to: &state)
        }
        guard let id else {
            eventLoop.execute(task)
            return ClockTimer(cancel: {})
        }
        return ClockTimer(cancel: { [self] in self.remove(id) })
    }

    public func sleep(until deadline: Int64) async throws {
        let sleeper = Sleeper()
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                guard sleeper.attach(continuation) else { return }
                let id = state.withLock { state -> UInt64? in
                    guard deadline > state.now, !sleeper.isFinished else { return nil }
                    return Self.add(Pending(deadline: deadline, action: .wake(sleeper)), to: &state)
                }
                if let id { sleeper.setID(id) } else { sleeper.finish(nil) }
            }
        } onCancel: {
            sleeper.finish(CancellationError())
            if let id = sleeper.id { remove(id) }
        }
    }

    // MARK: Internals

    /// Adds a timer and wakes the tests waiting for its deadline.
    private static func add(_ pending: Pending, to state: inout State) -> UInt64 {
        state.nextID += 1
        let id = state.nextID
        state.pending[id] = pending
        var woken: [Waiter] = []
        state.waiters.removeAll { waiter in
            guard waiter.deadline == pending.deadline else { return false }
            woken.append(waiter)
            return true
        }
        // Resuming under the lock is safe: a continuation only schedules its task.
        for waiter in woken { waiter.continuation.resume() }
        return id
    }

    private static func takeDue(_ state: inout State) -> [Pending] {
        let now = state.now
        let due = state.pending.filter { $0.value.deadline <= now }.sorted { ($0.value.deadline, $0.key) < ($1.value.deadline, $1.key) }
        for (id, _) in due { state.pending[id] = nil }
        return due.map(\.value)
    }

    private func fire(_ due: [Pending]) {
        for pending in due {
            switch pending.action {
            case .run(let loop, let task): loop.execute(task)
            case .wake(let sleeper): sleeper.finish(nil)
            }
        }
    }

    private func remove(_ id: UInt64) {
        _ = state.withLock { $0.pending.removeValue(forKey: id) }
    }

    private func timerPending(at deadline: Int64) async throws {
        let id = state.withLock { state -> UInt64 in
            state.nextID += 1
            return state.nextID
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let now = state.withLock { state -> Bool in
                    if state.pending.values.contains(where: { $0.deadline == deadline }) { return true }
                    state.waiters.append(Waiter(id: id, deadline: deadline, continuation: continuation))
                    return false
                }
                if now { continuation.resume() }
            }
        } onCancel: {
            let waiter = state.withLock { state -> Waiter? in
                guard let index = state.waiters.firstIndex(where: { $0.id == id }) else { return nil }
                return state.waiters.remove(at: index)
            }
            waiter?.continuation.resume(throwing: CancellationError())
        }
    }
}

/// One task sleeping on a `TestClock`: resumed once, by the clock or by cancellation, whichever
/// comes first, even when that comes before the task has begun to wait.
private final class Sleeper: Sendable {
    private struct State {
        var continuation: CheckedContinuation<Void, any Error>?
        /// Set once finished: nil error for a wake-up, else the cancellation.
        var outcome: Result<Void, any Error>?
        var id: UInt64?
    }

    /// Guards the continuation, the outcome and the timer id.
    private let state = Mutex(State())

    var isFinished: Bool { state.withLock { $0.outcome != nil } }
    var id: UInt64? { state.withLock { $0.id } }

    func setID(_ id: UInt64) { state.withLock { $0.id = id } }

    /// Keeps `continuation`, or resumes it at once if the sleep already ended; returns whether
    /// the sleep is still on.
    func attach(_ continuation: CheckedContinuation<Void, any Error>) -> Bool {
        let outcome = state.withLock { state -> Result<Void, any Error>? in
            if state.outcome == nil { state.continuation = continuation }
            return state.outcome
        }
        guard let outcome else { return true }
        continuation.resume(with: outcome)
        return false
    }

    func finish(_ error: (any Error)?) {
        let outcome: Result<Void, any Error> = error.map { .failure($0) } ?? .success(())
        let continuation = state.withLock { state -> CheckedContinuation<Void, any Error>? in
            guard state.outcome == nil else { return nil }
            state.outcome = outcome
            defer { state.continuation = nil }
            return state.continuation
        }
        continuation?.resume(with: outcome)
    }
}
