import Atomics

/// Node-wide counters for `/admin/stats` and `/metrics`, updated lock-free.
public final class GatewayStats: Sendable {
    public let framesIn = ManagedAtomic<Int>(0)
    public let framesOut = ManagedAtomic<Int>(0)
    public let messagesAccepted = ManagedAtomic<Int>(0)
    public let messagesRejected = ManagedAtomic<Int>(0)
    /// Sessions closed because their outbound queue was full.
    public let slowConsumers = ManagedAtomic<Int>(0)
    /// Sockets refused at accept, over `max_connections` or `max_connections_per_ip`.
    public let refusedConnections = ManagedAtomic<Int>(0)
    /// Live deliveries of `message` frames.
    public let deliveries = ManagedAtomic<Int>(0)
    /// Milliseconds since the Unix epoch when the node started.
    public let startedAt: Int64
    /// Per-connection objects alive now, each counted in its `init` and `deinit`.
    public let live = LiveObjects()

    /// How many of each per-connection object exist: once every connection has ended, each
    /// reads 0 again. A count that stays above the live sessions is a leak (the lifecycle tests
    /// check exactly that after churns of thousands of connections).
    public final class LiveObjects: Sendable {
        /// `Session`s (every transport).
        public let sessions = ManagedAtomic<Int>(0)
        /// WebSocket connections (the connection object and its channel handler each count once).
        public let websocketConnections = ManagedAtomic<Int>(0)
        public let websocketHandlers = ManagedAtomic<Int>(0)
        /// Long-poll sessions' transport objects.
        public let longPollConnections = ManagedAtomic<Int>(0)

        /// Every count, by name (for `/admin/stats` and tests).
        public var snapshot: [String: Int] {
            [
                "sessions": sessions.load(ordering: .relaxed),
                "websocket_connections": websocketConnections.load(ordering: .relaxed),
                "websocket_handlers": websocketHandlers.load(ordering: .relaxed),
                "longpoll_connections": longPollConnections.load(ordering: .relaxed),
            ]
        }
    }

    public init(startedAt: Int64) {
        self.startedAt = startedAt
    }
}
