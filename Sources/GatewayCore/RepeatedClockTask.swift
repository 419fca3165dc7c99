import NIOCore
import Synchronization

/// A task run every `interval` milliseconds of a `GatewayClock`, on one event loop (the
/// heartbeat sweep, the long-poll expiry sweep).
///
/// Each run schedules the next at the first multiple of the interval (counted from the first
/// deadline) that lies after the time the run read, so a late run (a busy loop, a test stepping
/// the clock by several intervals at once) runs once, not once per missed interval. The task
/// reads the clock itself when it needs the time. `Sendable`: the pending timer is behind a lock.
public final class RepeatedClockTask: Sendable {
    private struct State {
        var timer: ClockTimer?
        var cancelled = false
    }

    private let clock: any GatewayClock
    private let eventLoop: any EventLoop
    /// Milliseconds between runs (at least 1).
    public let interval: Int64
    private let task: @Sendable () -> Void
    /// Guards the pending timer and whether the task was cancelled.
    private let state = Mutex(State())

    /// Starts at once: the first run is `interval` after now.
    public init(clock: any GatewayClock, interval: Int64, on eventLoop: any EventLoop, _ task: @escaping @Sendable () -> Void) {
        self.clock = clock
        self.eventLoop = eventLoop
        self.interval = max(1, interval)
        self.task = task
        arm(at: clock.nowMillis() + self.interval)
    }

    /// Stops the runs; a run already under way finishes.
    public func cancel() {
        let timer = state.withLock { state -> ClockTimer? in
            state.cancelled = true
            defer { state.timer = nil }
            return state.timer
        }
        timer?.cancel()
    }

    private func arm(at deadline: Int64) {
        // The closure holds this task until it fires or is cancelled (as NIO's RepeatedTask).
        let timer = clock.schedule(at: deadline, on: eventLoop) { [self] in self.fire(due: deadline) }
        let keep = state.withLock { state -> Bool in
            guard !state.cancelled else { return false }
            state.timer = timer
            return true
        }
        if !keep { timer.cancel() }
    }

    private func fire(due: Int64) {
        guard !state.withLock({ $0.cancelled }) else { return }
        let now = clock.nowMillis()
        task()
        // The next deadline after `now`: one run however far the clock jumped.
        let missed = max(0, (now - due) / interval)
        arm(at: due + (missed + 1) * interval)
    }
}
