import Logging

/// What a stage can reach while it processes a frame.
public struct StageContext: Sendable {
    /// The stage's name in the pipeline (its `name:` or its kind).
    public let name: String
    public let logger: Logger
    public let clock: any GatewayClock
    public let stores: Stores
    /// Who is online on this node.
    public let presence: any PresenceQuery

    public init(name: String, logger: Logger, clock: any GatewayClock, stores: Stores, presence: any PresenceQuery) {
        self.name = name
        self.logger = logger
        self.clock = clock
        self.stores = stores
        self.presence = presence
    }
}
