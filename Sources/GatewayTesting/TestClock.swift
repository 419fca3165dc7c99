import GatewayCore
import Synchronization

/// A clock tests set and step by hand, backwards included.
///
/// `sleep(untilMillis:)` returns when a test steps the clock to or past the deadline, so a
/// test waits for a timer with `waitForSleepers(_:)` (an event, not a sleep) and then fires
/// it with `advance(by:)`.
public final class TestClock: GatewayClock, Sendable {
    struct Sleeper {
        let id: UInt64
        let deadline: Int64
        let continuation: CheckedContinuation<Void, any Error>
    }

    struct State {
        var now: Int64
        var nextID: UInt64 = 0
        var sleepers: [Sleeper] = []
        /// Tests waiting until at least this many sleepers wait.
        var watchers: [(count: Int, continuation: CheckedContinuation<Void, Never>)] = []
    }

    /// Guards the current time in milliseconds, the pending sleeps and the tests waiting for them.
    private let state: Mutex<State>

    public init(millis: Int64 = 1_767_225_600_000) {  // 2026-01-01T00:00:00Z
        state = Mutex(State(now: millis))
    }

    public func nowMillis() -> Int64 { state.withLock { $0.now } }

    public func set(_ millis: Int64) { step { $0 = millis } }

    public func advance(by millis: Int64) { step { $0 += millis } }

    /// How many `sleep(untilMillis:)` calls are waiting.
    public var sleeperCount: Int { state.withLock { $0.sleepers.count } }

    /// Returns once at least `count` sleeps are waiting on this clock.
    public func waitForSleepers(_ count: Int = 1) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let ready = state.withLock { state -> Bool in
                if state.sleepers.count >= count { return true }
                state.watchers.append((count, continuation))
                return false
            }
            if ready { continuation.resume() }
        }
    }

    public func sleep(untilMillis deadline: Int64) async throws {
        let id = state.withLock { state -> UInt64 in
            state.nextID &+= 1
            return state.nextID
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let (due, watchers): (Bool, [CheckedContinuation<Void, Never>]) = state.withLock { state in
                    if state.now >= deadline || Task.isCancelled { return (true, []) }
                    state.sleepers.append(Sleeper(id: id, deadline: deadline, continuation: continuation))
                    let count = state.sleepers.count
                    let ready = state.watchers.filter { $0.count <= count }.map(\.continuation)
                    state.watchers.removeAll { $0.count <= count }
                    return (false, ready)
                }
                for watcher in watchers { watcher.resume() }
                if due {
                    if Task.isCancelled { continuation.resume(throwing: CancellationError()) } else { continuation.resume() }
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
            let due = state.sleepers.filter { $0.deadline <= now }
            state.sleepers.removeAll { $0.deadline <= now }
            return due
        }
        for sleeper in due { sleeper.continuation.resume() }
    }
}
