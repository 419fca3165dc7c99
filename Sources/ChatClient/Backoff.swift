/// Exponential backoff with full jitter: attempt `n` waits a random time in
/// `[0, min(maxMs, baseMs * 2^n))`, so clients a restart disconnected together do not come
/// back together.
public struct Backoff: Sendable, Equatable {
    public var baseMs: Int
    public var maxMs: Int

    public init(baseMs: Int = 500, maxMs: Int = 30000) {
        precondition(baseMs >= 1 && maxMs >= baseMs, "backoff needs 1 <= baseMs <= maxMs")
        self.baseMs = baseMs
        self.maxMs = maxMs
    }

    /// The cap of attempt `attempt` (0-based).
    public func cap(attempt: Int) -> Int {
        let shift = min(max(attempt, 0), 30)
        return min(maxMs, baseMs.multipliedReportingOverflow(by: 1 << shift).overflow ? maxMs : baseMs << shift)
    }

    /// A random delay for attempt `attempt`, in milliseconds.
    public func delay(attempt: Int) -> Int {
        Int.random(in: 0..<max(1, cap(attempt: attempt)))
    }
}
