/// The push figures of `/admin/stats` and `/metrics` (PROTOCOL.md section 7), read from the
/// pipeline's push stage when there is one (the core knows no particular stage).
public struct PushFigures: Sendable, Hashable {
    /// Sent, failed (given up) and retried notifications, per provider platform.
    public struct PerProvider: Sendable, Hashable {
        public var sent = 0
        public var failed = 0
        public var retried = 0
        public init() {}
    }

    public var sent = 0
    public var failed = 0
    public var retried = 0
    /// Targets removed because their provider reported them gone.
    public var droppedTargets = 0
    /// Notifications cancelled by a device's `delivered` or `read`.
    public var cancelled = 0
    /// Notifications waiting in the durable queue.
    public var queued = 0
    public var byProvider: [PushPlatform: PerProvider] = [:]

    public init() {}
}

/// A stage that sends push notifications and counts them (the `push` stage).
public protocol PushFigureSource: Sendable {
    func pushFigures() async -> PushFigures
}
