#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Wall-clock time in milliseconds since the Unix epoch.
///
/// Injected wherever time matters (Snowflake ids, token expiry, presence, backoff) so tests
/// can step it, including backwards.
public protocol GatewayClock: Sendable {
    func nowMillis() -> Int64
    /// Returns once `nowMillis()` has reached `deadline`; throws `CancellationError` when the
    /// task is cancelled first. The default sleeps in real time; `TestClock` returns when a
    /// test steps it past the deadline.
    func sleep(until deadline: Int64) async throws
}

extension GatewayClock {
    public func sleep(until deadline: Int64) async throws {
        let remaining = deadline - nowMillis()
        if remaining > 0 { try await Task.sleep(for: .milliseconds(remaining)) }
        try Task.checkCancellation()
    }
}

/// The system's real-time clock.
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
