/// `cluster: { bus_queue, relay_max_bytes }`: bounds of the cluster mode (`store.kind:
/// postgres`); a single node ignores them.
public struct ClusterSettings: Decodable, Sendable {
    /// Most frames waiting in this node's cluster bus queue for other nodes; past it, frames are
    /// dropped (their recipients `sync`). Default 65536.
    public var busQueue: Int = 65_536
    /// Most bytes of a long-poll answer relayed from the node holding the session. Default
    /// 67108864 (64 MiB).
    public var relayMaxBytes: Int = 64 << 20

    public static let busQueueRange = 1024...16_777_216
    public static let relayMaxBytesRange = (1 << 20)...(1 << 30)

    enum CodingKeys: String, CodingKey {
        case busQueue = "bus_queue"
        case relayMaxBytes = "relay_max_bytes"
    }

    public init() {}

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        busQueue = try c.decodeIfPresent(Int.self, forKey: .busQueue) ?? 65_536
        try require(Self.busQueueRange.contains(busQueue), c, .busQueue, "must be 1024...16777216 (was \(busQueue))")
        relayMaxBytes = try c.decodeIfPresent(Int.self, forKey: .relayMaxBytes) ?? 64 << 20
        try require(
            Self.relayMaxBytesRange.contains(relayMaxBytes), c, .relayMaxBytes, "must be 1048576...1073741824 (was \(relayMaxBytes))")
    }
}
