import Logging

/// Everything a factory may use to build a stage.
public struct StageBuildContext: Sendable {
    public let name: String
    public let kind: String
    public let settings: any SettingsSource
    /// The frame kinds the pipeline entry hands this stage (its `on:`, default `[send]`).
    public let on: Set<FrameKind>
    public let logger: Logger
    public let clock: any GatewayClock
    public let stores: Stores
    /// Node-wide settings some stages need (the node's worker id for `id`).
    public let node: NodeSettings
    /// Whether the public listener can be reached from other machines: stages refuse
    /// published development secrets when it can (`Secret.isPublishedDefault`).
    public let exposure: ListenerExposure
    /// The entry's own `timeout_ms` and `on_error`, when it sets them (nil: not set). The
    /// runner applies them; a stage reads them only to size its own I/O (an HTTP timeout).
    public let timeoutMs: Int?
    public let onError: StagePolicy.OnError?

    public init(
        name: String, kind: String, settings: any SettingsSource, on: Set<FrameKind> = [.send], logger: Logger, clock: any GatewayClock,
        stores: Stores, node: NodeSettings, exposure: ListenerExposure = .loopback, timeoutMs: Int? = nil, onError: StagePolicy.OnError? = nil
    ) {
        self.timeoutMs = timeoutMs
        self.onError = onError
        self.name = name
        self.kind = kind
        self.settings = settings
        self.on = on
        self.logger = logger
        self.clock = clock
        self.stores = stores
        self.node = node
        self.exposure = exposure
    }
}
