import Atomics

/// Node-wide counters for `/admin/stats` and `/metrics`, updated lock-free.
public final class GatewayStats: Sendable {
    public let framesIn = ManagedAtomic<Int>(0)
    public let framesOut = ManagedAtomic<Int>(0)
    public let messagesAccepted = ManagedAtomic<Int>(0)
    public let messagesRejected = ManagedAtomic<Int>(0)
    /// Sessions closed because their outbound queue was full.
    public let slowConsumers = ManagedAtomic<Int>(0)
    /// Live deliveries of `message` frames.
    public let deliveries = ManagedAtomic<Int>(0)
    /// Milliseconds since the Unix epoch when the node started.
    public let startedAt: Int64

    public init(startedAt: Int64) {
        self.startedAt = startedAt
    }
}
