import GatewayCore
import Logging
import NIOCore
import PostgresNIO
import ServiceLifecycle
import Synchronization

/// The cluster bus on PostgreSQL: LISTEN/NOTIFY, one channel per node (`chatgate_w<worker id>`,
/// the node's leased Snowflake worker id, unique among live nodes), and the table
/// `cluster_presence` (worker id, user) of who is live where.
///
/// - **Who is where.** Each node keeps in memory the users live on the other live nodes: loaded
///   from `cluster_presence` when its LISTEN connection (re)connects, then kept current by the
///   presence records the other nodes send to every live node's channel when a user's first
///   session opens or last one closes there (and write to the table in the same statement).
///   A node that stops renewing its lease drops out at the next refresh (every `lease_ms / 3`):
///   its users go offline (after `presence.grace_ms`) and its rows are deleted.
/// - **Deliveries.** After a commit, each recipient live on other nodes gets its frame (with its
///   own seq) NOTIFYed to those nodes only, in commit order, batched: one statement per burst,
///   many records per notification. A frame too large for a notification (PostgreSQL's limit
///   is 8,000 bytes) goes as (user, seq) and the receiving node reads it from the inbox.
///   Typing, receipts and live-only messages cross the same way, without a seq.
/// - **Order.** One flush task at a time sends what was queued, in queue order; PostgreSQL
///   delivers one transaction's notifications in order, and one listener's in commit order.
///
/// Records (a notification holds several, each ends with `\n`):
/// `d\t<user>\t<byte count>\t<frame JSON>` · `l\t<user>\t<seq>` · `p\t<worker>\t+|-\t<user>` ·
/// `r\t<worker>` (that node (re)started or stopped: none of its users is live there).
public final class PostgresClusterBus: ClusterBus, Service, Sendable {
    /// Most frames waiting to be sent to other nodes by default (`cluster.bus_queue`); past the
    /// bound, frames are dropped (counted and logged): their recipients get them with their next
    /// `sync`, as after a lost connection.
    public static let defaultMaxQueued = 65_536
    /// Most bytes of one notification's payload (PostgreSQL refuses 8,000 and more).
    public static let payloadLimit = 7_900

    struct State {
        /// User → the other live nodes (worker ids) where the user has sessions.
        var remote: [String: Set<Int32>] = [:]
        /// Worker id → its users in `remote`.
        var byWorker: [Int32: Set<String>] = [:]
        /// The live nodes' worker ids at the last refresh (this node's included).
        var liveWorkers: Set<Int32> = []
        /// Frames for other nodes, in order.
        var deliveries: [ClusterDelivery] = []
        /// This node's presence changes not yet written: user → online (the last change wins).
        var presence: [String: Bool] = [:]
        /// Whether a flush task runs.
        var flushing = false
        /// Whether `run` has cleaned this worker id's old rows (no flush before).
        var started = false
        /// Whether `run` has ended: nothing is sent any more.
        var stopped = false
        /// Frames dropped because the queue was full.
        var dropped = 0
    }

    let store: PostgresStore
    let lease: NodeLease
    let logger: Logger
    let clock: any GatewayClock
    /// The public base URL configured (`node.public_url`); nil: built from the bound port.
    let publicURL: String?
    /// Whether the public listener speaks TLS (for URLs built from the bound port).
    let tls: Bool
    /// Most frames waiting to be sent to other nodes (`cluster.bus_queue`).
    let maxQueued: Int
    /// The bound public port, once the listener runs (set by `attach`).
    private let boundPort = Mutex<(@Sendable () async -> Int)?>(nil)
    private let state = Mutex(State())
    /// The gateway that receives other nodes' frames and presence (set by `attach`).
    private let gateway = Mutex<Gateway?>(nil)

    public init(
        store: PostgresStore, lease: NodeLease, clock: any GatewayClock, logger: Logger, publicURL: String?, tls: Bool,
        maxQueued: Int = PostgresClusterBus.defaultMaxQueued
    ) {
        self.maxQueued = max(1, maxQueued)
        self.store = store
        self.lease = lease
        self.clock = clock
        self.logger = logger
        self.publicURL = publicURL
        self.tls = tls
    }

    /// The gateway other nodes' frames are delivered to (until `run` ends), and how to learn
    /// the bound public port (to advertise when `node.public_url` is not set).
    public func attach(_ gateway: Gateway, boundPort: @escaping @Sendable () async -> Int) {
        self.gateway.withLock { $0 = gateway }
        self.boundPort.withLock { $0 = boundPort }
    }

    var me: Int32? { lease.workerID.map(Int32.init) }
    static func channel(_ worker: Int32) -> String { "chatgate_w\(worker)" }

    /// Frames dropped because the queue was full, since start.
    public var droppedCount: Int { state.withLock { $0.dropped } }

    // MARK: ClusterBus

    public func isOnlineElsewhere(_ user: String) -> Bool {
        state.withLock { $0.remote[user] != nil }
    }

    public func forward(_ deliveries: [ClusterDelivery]) {
        let (start, dropped): (Bool, Int?) = state.withLock { state in
            guard state.deliveries.count + deliveries.count <= maxQueued else {
                let before = state.dropped
                state.dropped += deliveries.count
                // Logged at the first drop and then every 10,000 frames.
                return (false, before == 0 || before / 10_000 != state.dropped / 10_000 ? state.dropped : nil)
            }
            state.deliveries += deliveries
            return (state.kick(), nil)
        }
        if start { Task { await flush() } }
        if let dropped {
            logger.warning(
                "cluster bus: queue full, frames for other nodes dropped (their recipients sync)", metadata: ["gateway.dropped_total": "\(dropped)"])
        }
    }

    public func localUserChanged(_ user: String, online: Bool) {
        let start: Bool = state.withLock { state in
            state.presence[user] = online
            return state.kick()
        }
        if start { Task { await flush() } }
    }

    public func discover() async throws -> ClusterNodeInfo? {
        guard let node = try await lease.liveNodes().first else { return nil }
        return ClusterNodeInfo(node: node.id, wsURL: node.wsURL, longpollURL: node.longpollURL, load: node.load)
    }

    public func markDraining() async {
        do {
            try await lease.setDraining()
        } catch {
            logger.warning("could not mark this node draining", metadata: ["error": "\(error)"])
        }
    }

    public func longPollOwner(session: String) async throws -> String? {
        // The owner is the lease in the session's row (`PostgresClusterBus+LongPoll.swift`).
        guard case .remote(let url) = try await locate(session: session) else { return nil }
        return url
    }

    // MARK: Sending

    /// Sends everything queued, burst by burst, until the queue is empty.
    private func flush() async {
        while true {
            let taken: ([ClusterDelivery], [String: Bool], [String: Set<Int32>], Set<Int32>)? = state.withLock { state in
                guard !state.stopped, !state.deliveries.isEmpty || !state.presence.isEmpty else {
                    if state.stopped {
                        state.deliveries = []
                        state.presence = [:]
                    }
                    state.flushing = false
                    return nil
                }
                let deliveries = state.deliveries
                let presence = state.presence
                state.deliveries = []
                state.presence = [:]
                var targets: [String: Set<Int32>] = [:]
                for delivery in deliveries where targets[delivery.user] == nil {
                    targets[delivery.user] = state.remote[delivery.user] ?? []
                }
                return (deliveries, presence, targets, state.liveWorkers)
            }
            guard let taken else { return }
            let (deliveries, presence, targets, _) = taken
            guard let me else { continue }
            var notifications = Notifications()
            for delivery in deliveries {
                for worker in targets[delivery.user] ?? [] where worker != me {
                    notifications.append(Self.record(delivery), to: worker)
                }
            }
            let online = presence.filter { $0.value }.keys.sorted()
            let offline = presence.filter { !$0.value }.keys.sorted()
            // Presence goes to every node registered now (read in the statement itself, so a
            // node that has just joined is not missed), in as many payloads as it takes; each
            // user appears once per burst, so their order does not matter.
            var presencePayloads = Notifications()
            for user in online { presencePayloads.append(Array("p\t\(me)\t+\t\(user)\n".utf8), to: me) }
            for user in offline { presencePayloads.append(Array("p\t\(me)\t-\t\(user)\n".utf8), to: me) }
            let presenceTexts = presencePayloads.finish().1
            let (channels, payloads) = notifications.finish()
            if channels.isEmpty && presence.isEmpty { continue }
            let now = clock.nowMillis()
            do {
                try await store.access { [store, logger] in
                    let query: PostgresQuery = """
                        WITH ins AS (
                            INSERT INTO cluster_presence(worker_id, user_id) SELECT \(me), u FROM unnest(\(online)::text[]) AS u
                            ON CONFLICT DO NOTHING),
                        del AS (DELETE FROM cluster_presence WHERE worker_id = \(me) AND user_id = ANY(\(offline)::text[]))
                        SELECT (SELECT count(pg_notify('chatgate_w' || n.worker_id, p)) FROM cluster_nodes n, unnest(\(presenceTexts)::text[]) AS p
                                WHERE n.worker_id <> \(me) AND n.lease_until >= \(now)),
                               (SELECT count(pg_notify(c, p)) FROM unnest(\(channels)::text[], \(payloads)::text[]) AS t(c, p))
                        """
                    for try await _ in try await store.client.query(query, logger: logger) {}
                }
            } catch {
                // Presence is kept for the next try (a later change of the same user wins);
                // frames are dropped: their recipients see the gap in seq and sync.
                logger.warning("cluster bus: sending failed", metadata: ["error": "\(error)", "gateway.frames": "\(deliveries.count)"])
                state.withLock { state in
                    for (user, online) in presence where state.presence[user] == nil { state.presence[user] = online }
                }
                try? await Task.sleep(for: .milliseconds(500))
            }
        }
    }

    /// The record of one delivery: the frame itself when it fits a notification, else its
    /// (user, seq) to load, else (no seq: a typing or receipt frame cannot be that large) none.
    static func record(_ delivery: ClusterDelivery) -> [UInt8] {
        let count = delivery.frame.readableBytes
        if count + delivery.user.utf8.count + 16 <= payloadLimit {
            var bytes = Array("d\t\(delivery.user)\t\(count)\t".utf8)
            bytes.reserveCapacity(bytes.count + count + 1)
            bytes += delivery.frame.readableBytesView
            bytes.append(UInt8(ascii: "\n"))
            return bytes
        }
        guard let seq = delivery.seq else { return [] }
        return Array("l\t\(delivery.user)\t\(seq)\n".utf8)
    }

    /// Notification payloads per channel, each under `payloadLimit` bytes, in order.
    struct Notifications {
        var channels: [String] = []
        var payloads: [String] = []
        var pending: [Int32: [UInt8]] = [:]
        var order: [Int32] = []

        mutating func append(_ record: [UInt8], to worker: Int32) {
            guard !record.isEmpty else { return }
            if let current = pending[worker], current.count + record.count > PostgresClusterBus.payloadLimit {
                channels.append(PostgresClusterBus.channel(worker))
                payloads.append(String(decoding: current, as: UTF8.self))
                pending[worker] = nil
            }
            if pending[worker] == nil, !order.contains(worker) { order.append(worker) }
            pending[worker, default: []] += record
        }

        mutating func finish() -> ([String], [String]) {
            for worker in order {
                if let rest = pending[worker], !rest.isEmpty {
                    channels.append(PostgresClusterBus.channel(worker))
                    payloads.append(String(decoding: rest, as: UTF8.self))
                }
            }
            return (channels, payloads)
        }
    }

    // MARK: Receiving

    /// Applies one notification's records, in order.
    func receive(_ payload: String) async {
        let bytes = Array(payload.utf8)
        var index = 0
        func field() -> String? {
            guard let end = bytes[index...].firstIndex(where: { $0 == UInt8(ascii: "\t") || $0 == UInt8(ascii: "\n") }) else { return nil }
            defer { index = end + 1 }
            return String(decoding: bytes[index..<end], as: UTF8.self)
        }
        while index < bytes.count {
            guard let kind = field() else { return }
            switch kind {
            case "d":
                guard let user = field(), let count = field().flatMap(Int.init), count >= 0, index + count < bytes.count else { return }
                var frame = ServerFrame.emptyFrame(capacity: count)
                frame.writeBytes(bytes[index..<index + count])
                index += count + 1
                _ = gateway.withLock({ $0 })?.deliverFromCluster(to: user, frame: frame)
            case "l":
                guard let user = field(), let seq = field().flatMap(Int64.init) else { return }
                await load(user: user, seq: seq)
            case "p":
                guard let worker = field().flatMap(Int32.init), let sign = field(), let user = field() else { return }
                if sign == "+" { add(user, on: worker) } else { remove(user, from: worker) }
            case "r":
                guard let worker = field().flatMap(Int32.init) else { return }
                dropWorker(worker)
            default:
                logger.warning("cluster bus: unknown record", metadata: ["gateway.record": "\(kind)"])
                return
            }
        }
    }

    private func load(user: String, seq: Int64) async {
        guard let gateway = gateway.withLock({ $0 }), gateway.hub.isOnline(user) else { return }
        do {
            let page = try await store.inbox(user: user, after: seq - 1, limit: 1)
            guard let entry = page.entries.first, entry.seq == seq else { return }
            gateway.deliverFromCluster(to: user, frame: ServerFrame.message(entry.message, seq: seq))
        } catch {
            logger.warning("cluster bus: could not load a large message", metadata: ["error": "\(error)", "gateway.user": "\(user)"])
        }
    }

    private func add(_ user: String, on worker: Int32) {
        guard worker != me else { return }
        let first = state.withLock { state -> Bool in
            state.byWorker[worker, default: []].insert(user)
            return state.remote[user, default: []].insert(worker).inserted && state.remote[user]?.count == 1
        }
        if first { gateway.withLock({ $0 })?.presence.remoteUserChanged(user, online: true) }
    }

    private func remove(_ user: String, from worker: Int32) {
        let last = state.withLock { state -> Bool in
            state.byWorker[worker]?.remove(user)
            if state.byWorker[worker]?.isEmpty == true { state.byWorker[worker] = nil }
            guard state.remote[user]?.remove(worker) != nil else { return false }
            if state.remote[user]?.isEmpty == true {
                state.remote[user] = nil
                return true
            }
            return false
        }
        if last { gateway.withLock({ $0 })?.presence.remoteUserChanged(user, online: false) }
    }

    private func dropWorker(_ worker: Int32) {
        let users = state.withLock { $0.byWorker[worker] ?? [] }
        for user in users { remove(user, from: worker) }
    }

    /// Replaces what is known of the other nodes with the table's rows of live nodes (after a
    /// (re)connect, when notifications may have been missed), telling presence what changed.
    private func loadSnapshot() async throws {
        guard let me else { return }
        let now = clock.nowMillis()
        let (rows, live): ([(Int32, String)], Set<Int32>) = try await store.access { [store, logger] in
            var rows: [(Int32, String)] = []
            for try await row in try await store.client.query(
                """
                SELECT p.worker_id, p.user_id FROM cluster_presence p JOIN cluster_nodes n ON n.worker_id = p.worker_id
                WHERE n.lease_until >= \(now) AND p.worker_id <> \(me)
                """, logger: logger
            ).decode((Int32, String).self) {
                rows.append(row)
            }
            var live: Set<Int32> = []
            for try await worker in try await store.client.query(
                "SELECT worker_id FROM cluster_nodes WHERE lease_until >= \(now)", logger: logger
            ).decode(Int32.self) {
                live.insert(worker)
            }
            return (rows, live)
        }
        var fresh: [Int32: Set<String>] = [:]
        for (worker, user) in rows { fresh[worker, default: []].insert(user) }
        let old = state.withLock { state -> [Int32: Set<String>] in
            state.liveWorkers = live
            return state.byWorker
        }
        for (worker, users) in old {
            for user in users.subtracting(fresh[worker] ?? []) { remove(user, from: worker) }
        }
        for (worker, users) in fresh {
            for user in users.subtracting(old[worker] ?? []) { add(user, on: worker) }
        }
    }

    /// Reads which nodes are live; forgets the users of nodes that are not (their lease ran
    /// out: they died) and deletes those nodes' rows.
    /// Returns whether a node joined since the last refresh.
    @discardableResult
    private func refreshLiveNodes() async throws -> Bool {
        let now = clock.nowMillis()
        let live: Set<Int32> = try await store.access { [store, logger] in
            var live: Set<Int32> = []
            for try await worker in try await store.client.query(
                "SELECT worker_id FROM cluster_nodes WHERE lease_until >= \(now)", logger: logger
            ).decode(Int32.self) {
                live.insert(worker)
            }
            return live
        }
        let (gone, known, joined) = state.withLock { state -> (Set<Int32>, Set<Int32>, Bool) in
            let gone = state.liveWorkers.subtracting(live).union(Set(state.byWorker.keys).subtracting(live))
            let joined = !live.subtracting(state.liveWorkers).isEmpty
            state.liveWorkers = live
            return (gone, Set(state.byWorker.keys), joined)
        }
        for worker in gone where known.contains(worker) { dropWorker(worker) }
        if !gone.isEmpty {
            let dead = Array(gone)
            try await store.access { [store, logger] in
                for try await _ in try await store.client.query(
                    "DELETE FROM cluster_presence WHERE worker_id = ANY(\(dead)::integer[]) AND NOT worker_id = ANY(\(Array(live))::integer[])",
                    logger: logger) {}
            }
        }
        return joined
    }

    // MARK: Service

    public func run() async throws {
        guard let me else { return }
        // Advertise the address clients reach this node at (the bound port when not configured).
        let base: String
        if let publicURL {
            base = publicURL
        } else {
            let port = await boundPort.withLock({ $0 })?() ?? 0
            let host = lease.identity.wsURL.split(separator: "/").dropFirst().first.map { String($0.split(separator: ":").first ?? "127.0.0.1") }
            base = "\(tls ? "https" : "http")://\(host ?? "127.0.0.1"):\(port)"
        }
        do {
            try await lease.advertise(base: base)
        } catch {
            logger.warning("could not advertise this node's URLs", metadata: ["error": "\(error)"])
        }
        // An earlier run of this worker id (a crash) may have left rows: none of them is live.
        do {
            try await clearPresence(of: me)
        } catch {
            logger.warning("cluster bus: could not clear this node's old presence", metadata: ["error": "\(error)"])
        }
        let start = state.withLock { state -> Bool in
            state.started = true
            return state.kick()
        }
        if start { Task { await flush() } }

        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.listenLoop(me: me) }
            group.addTask { await self.refreshLoop() }
            try? await gracefulShutdown()
            group.cancelAll()
        }
        // Stopping: this node's users are live here no longer.
        state.withLock { state in
            state.stopped = true
            state.deliveries = []
            state.presence = [:]
        }
        do {
            try await clearPresence(of: me)
        } catch {
            logger.debug("cluster bus: could not clear this node's presence at shutdown", metadata: ["error": "\(error)"])
        }
        gateway.withLock { $0 = nil }
    }

    /// LISTEN on this node's channel on a connection of its own, reconnecting after a failure
    /// (and reloading who is where, since notifications may have been missed meanwhile).
    private func listenLoop(me: Int32) async {
        while !Task.isCancelled {
            do {
                try await store.client.withConnection { connection in
                    try await connection.listen(on: Self.channel(me)) { notifications in
                        try await self.loadSnapshot()
                        for try await notification in notifications {
                            await self.receive(notification.payload)
                        }
                    }
                }
            } catch {
                if Task.isCancelled { return }
                logger.warning("cluster bus: LISTEN connection lost; reconnecting", metadata: ["error": "\(error)"])
            }
            try? await Task.sleep(for: .milliseconds(500))
        }
    }

    private func refreshLoop() async {
        let interval = Duration.milliseconds(max(50, lease.leaseMs / 3))
        var first = true
        while !Task.isCancelled {
            do {
                try await Task.sleep(for: interval)
            } catch {
                return
            }
            do {
                // Once after start, and whenever a node joined: a presence change committed
                // while this node was registering may have missed it (docs/SCALING.md).
                if try await refreshLiveNodes() || first { try await loadSnapshot() }
                first = false
            } catch {
                logger.warning("cluster bus: could not read the live nodes", metadata: ["error": "\(error)"])
            }
        }
    }
}

extension PostgresClusterBus.State {
    /// Whether the caller should start a flush task (one runs at a time, after `run` started).
    mutating func kick() -> Bool {
        guard started, !stopped, !flushing else { return false }
        flushing = true
        return true
    }
}

extension NodeLease {
    /// Registers the URLs clients reach this node at: `<base>/v1/ws` (ws or wss) and `<base>/v1/lp`.
    func advertise(base: String) async throws {
        guard let worker = workerID else { return }
        let trimmed = base.hasSuffix("/") ? String(base.dropLast()) : base
        let rest = trimmed.hasPrefix("https:") ? String(trimmed.dropFirst(6)) : String(trimmed.dropFirst(5))
        let ws = (trimmed.hasPrefix("https:") ? "wss:" : "ws:") + rest + "/v1/ws"
        let longpoll = trimmed + "/v1/lp"
        try await store.access { [self] in
            for try await _ in try await store.client.query(
                "UPDATE cluster_nodes SET ws_url = \(ws), longpoll_url = \(longpoll) WHERE worker_id = \(Int32(worker)) AND instance = \(instance)",
                logger: logger) {}
        }
    }
}

extension PostgresStore {
    /// `cluster_presence` (see `PostgresClusterBus`).
    static let clusterBusMigration = Migration(version: 50, name: "cluster-presence", statements: [
        """
        CREATE TABLE cluster_presence (
            worker_id integer NOT NULL,
            user_id text NOT NULL,
            PRIMARY KEY (worker_id, user_id)
        )
        """
    ])
}

extension PostgresClusterBus {
    /// Deletes worker `me`'s rows of `cluster_presence` and tells every other node (`r`).
    fileprivate func clearPresence(of me: Int32) async throws {
        try await store.access { [store, logger] in
            for try await _ in try await store.client.query(
                """
                WITH del AS (DELETE FROM cluster_presence WHERE worker_id = \(me))
                SELECT count(pg_notify('chatgate_w' || worker_id, \("r\t\(me)\n"))) FROM cluster_nodes WHERE worker_id <> \(me)
                """, logger: logger) {}
        }
    }
}
