import NIOCore

/// The link between the nodes of a cluster, as the core sees it: which users are live on other
/// nodes, frames for their sessions there, this node's presence changes, discovery and draining.
///
/// The core never names the implementation: a single node uses `NoClusterBus` (every call a
/// no-op, nobody elsewhere); a PostgreSQL cluster uses `PostgresClusterBus` (LISTEN/NOTIFY, a
/// channel per node, `Sources/PostgresStore/PostgresClusterBus.swift`), wired by `Bootstrap`.
///
/// Requirements: `forward` and `localUserChanged` never block and never wait for the network
/// (they are called inside the group commit's delivery and under the hub's transitions); they
/// queue, bounded, and keep the order of their calls.
public protocol ClusterBus: Sendable {
    /// Whether `user` has a live session on another live node.
    func isOnlineElsewhere(_ user: String) -> Bool

    /// Frames for `user`'s sessions on the other nodes where the user is live (none: nothing
    /// happens). Called in commit order; the receiving node delivers them to its local sessions
    /// as a local delivery would, in the same order.
    func forward(_ deliveries: [ClusterDelivery])

    /// This node's first session of `user` opened (true) or its last one closed (false).
    func localUserChanged(_ user: String, online: Bool)

    /// The node a client should connect to: the least-loaded live node that is not draining;
    /// nil when there is no cluster (the answering node names itself).
    func discover() async throws -> ClusterNodeInfo?

    /// Marks this node draining: discovery stops naming it.
    func markDraining() async

    /// Where to send a long-poll request for a session this node does not hold: the owning
    /// node's long-poll base URL (`…/v1/lp`), or nil when no live node owns it.
    func longPollOwner(session: String) async throws -> String?

    /// Where the cluster keeps long-poll sessions so they outlive their node
    /// (`LongPollDirectory.swift`); nil (the default) on a single node.
    var longPolls: (any LongPollDirectory)? { get }
}

/// One frame for one user's sessions on other nodes.
public struct ClusterDelivery: Sendable {
    public var user: String
    /// The frame's JSON (a `ServerFrame` buffer).
    public var frame: ByteBuffer
    /// For a `message` frame, the user's inbox seq: a frame too large for the bus travels as
    /// (user, seq) and the receiving node loads it from the store.
    public var seq: Int64?

    public init(user: String, frame: ByteBuffer, seq: Int64? = nil) {
        self.user = user
        self.frame = frame
        self.seq = seq
    }
}

/// A live node as `/v1/discover` names it.
public struct ClusterNodeInfo: Sendable, Hashable {
    public var node: String
    public var wsURL: String
    public var longpollURL: String
    /// Live sessions per allowed session, 0...1.
    public var load: Double

    public init(node: String, wsURL: String, longpollURL: String, load: Double) {
        self.node = node
        self.wsURL = wsURL
        self.longpollURL = longpollURL
        self.load = load
    }
}

/// One node, no cluster: nobody is live elsewhere and nothing crosses.
public struct NoClusterBus: ClusterBus {
    public init() {}
    public func isOnlineElsewhere(_ user: String) -> Bool { false }
    public func forward(_ deliveries: [ClusterDelivery]) {}
    public func localUserChanged(_ user: String, online: Bool) {}
    public func discover() async throws -> ClusterNodeInfo? { nil }
    public func markDraining() async {}
    public func longPollOwner(session: String) async throws -> String? { nil }
}

/// "Is this user live anywhere in the cluster": this node's hub, then the bus. What the
/// pipeline's stages get as `StageContext.presence` (the push stage notifies at once only users
/// offline on every node).
public struct ClusterPresenceQuery: PresenceQuery {
    public let hub: SessionHub
    public let bus: any ClusterBus

    public init(hub: SessionHub, bus: any ClusterBus) {
        self.hub = hub
        self.bus = bus
    }

    public func isOnline(_ user: String) -> Bool {
        hub.isOnline(user) || bus.isOnlineElsewhere(user)
    }
}
