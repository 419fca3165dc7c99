import NIOCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Wall-clock time in milliseconds since the Unix epoch, and timers that fire on that time.
///
/// Injected wherever time matters (Snowflake ids, token expiry and its grace, the heartbeat
/// sweep, the auth timeout, presence grace, long-poll waits and expiry, push retries), so tests
/// step it, including backwards, and timers fire when a test moves time past them rather than
/// after real time passes.
///
/// Deadlines are absolute times on this clock, never durations: a deadline taken before a test
/// steps the clock still fires on that step, however late the timer is registered.
///
/// ```swift
/// let deadline = clock.nowMillis() + Int64(limits.authTimeoutMs)
/// timer = clock.schedule(at: deadline, on: context.eventLoop) { handler.value.authTimedOut() }
/// ...
/// timer.cancel()
/// ```
///
/// Implementation requirements: `nowMillis()` is cheap and callable from any thread. The default
/// `schedule(at:on:_:)` and `sleep(until:)` wait for real time (NIO's scheduler and `Task.sleep`),
/// which is right for any clock that follows real time, offset or not; a clock that is stepped
/// by hand (`TestClock` in GatewayTesting) implements both to fire when it is stepped.
public protocol GatewayClock: Sendable {
    /// The current time, in milliseconds since the Unix epoch.
    func nowMillis() -> Int64

    /// Runs `task` on `eventLoop` once this clock reads `deadline` or later (at once when it
    /// already does). The returned timer cancels it; cancelling after it ran does nothing.
    func schedule(at deadline: Int64, on eventLoop: any EventLoop, _ task: @escaping @Sendable () -> Void) -> ClockTimer

    /// Suspends until this clock reads `deadline` or later; throws `CancellationError` when the
    /// task is cancelled first.
    func sleep(until deadline: Int64) async throws
}

extension GatewayClock {
    /// On NIO's scheduler, `deadline - nowMillis()` from now: no cost beyond the event loop's own
    /// timer.
    public func schedule(at deadline: Int64, on eventLoop: any EventLoop, _ task: @escaping @Sendable () -> Void) -> ClockTimer {
        ClockTimer(eventLoop.scheduleTask(in: .milliseconds(max(0, deadline - nowMillis())), task))
    }

    /// `Task.sleep` for `deadline - nowMillis()`.
    public func sleep(until deadline: Int64) async throws {
        let delay = deadline - nowMillis()
        guard delay > 0 else { return try Task.checkCancellation() }
        try await Task.sleep(for: .milliseconds(delay))
    }
}

/// The system's real-time clock; timers wait for real time on the event loop they are given.
public struct SystemClock: GatewayClock {
    public init() {}

    public func nowMillis() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
    }
}

/// Monotonic nanoseconds, for measuring durations.
@inline(__always) func monotonicNanos() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
}
