import GatewayCore
import Synchronization

/// A clock tests set and step by hand, backwards included.
public final class TestClock: GatewayClock, Sendable {
    /// Guards the current time in milliseconds.
    private let now: Mutex<Int64>

    public init(millis: Int64 = 1_767_225_600_000) {  // 2026-01-01T00:00:00Z
        now = Mutex(millis)
    }

    public func nowMillis() -> Int64 { now.withLock { $0 } }

    public func set(_ millis: Int64) { now.withLock { $0 = millis } }

    public func advance(by millis: Int64) { now.withLock { $0 += millis } }
}
