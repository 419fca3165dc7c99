import Foundation
import GatewayCore
import Logging
import PostgresNIO
import ServiceLifecycle
import Synchronization

/// A node of a cluster, as registered in PostgreSQL (`cluster_nodes`).
public struct ClusterNode: Sendable, Hashable {
    public var id: String
    public var workerID: Int
    public var wsURL: String
    public var longpollURL: String
    public var sessions: Int
    public var maxSessions: Int
    /// Sessions per allowed session, 0...1.
    public var load: Double { Double(sessions) / Double(max(1, maxSessions)) }
}

/// This node's lease in `cluster_nodes`: its registration (id, public URLs, live sessions) and
/// its Snowflake worker id, which no two live nodes hold at once.
///
/// ```swift
/// let lease = NodeLease(store: store, node: identity, leaseMs: 10_000, clock: SystemClock(), logger: logger)
/// let worker = try await lease.acquire(worker: nil, sessions: 0)   // nil: the lowest free id
/// // … `run()` renews it every leaseMs / 3 …
/// lease.isValid   // false once the lease ran out without a renewal: refuse sends
/// ```
///
/// Timing. A lease taken or renewed at time t (this node's clock, read before the statement)
/// is stored as `lease_until = t + leaseMs`. Another node takes the worker id only when its own
/// clock is past `lease_until`; this node stops accepting sends at `t + leaseMs - marginMs`,
/// earlier by the margin (which covers clock skew between nodes and the statement's round
/// trip). A renewal that fails (PostgreSQL unreachable) leaves the old deadline in force; a
/// renewal that finds the row taken by another instance ends the lease for good.
public final class NodeLease: Service, Sendable {
    public struct Identity: Sendable {
        public var nodeID: String
        public var wsURL: String
        public var longpollURL: String
        public var maxSessions: Int

        public init(nodeID: String, wsURL: String, longpollURL: String, maxSessions: Int) {
            self.nodeID = nodeID
            self.wsURL = wsURL
            self.longpollURL = longpollURL
            self.maxSessions = maxSessions
        }
    }

    struct State {
        var workerID: Int?
        /// Milliseconds (this node's clock) until which sends are accepted.
        var validUntil: Int64 = .min
        /// Another instance took the worker id: the lease cannot come back.
        var lost = false
    }

    let store: PostgresStore
    let identity: Identity
    let leaseMs: Int64
    let marginMs: Int64
    let clock: any GatewayClock
    let logger: Logger
    /// Tells this process's lease from an earlier one of the same node (restarted after a crash).
    let instance = UUID().uuidString
    /// Live sessions, reported at every renewal.
    let sessions: @Sendable () -> Int
    private let state = Mutex(State())

    public init(
        store: PostgresStore, node: Identity, leaseMs: Int64, marginMs: Int64? = nil, clock: any GatewayClock, logger: Logger,
        sessions: @escaping @Sendable () -> Int = { 0 }
    ) {
        self.store = store
        self.identity = node
        self.leaseMs = max(100, leaseMs)
        self.marginMs = min(marginMs ?? self.leaseMs / 5, self.leaseMs / 2)
        self.clock = clock
        self.logger = logger
        self.sessions = sessions
    }

    /// The worker id held, once acquired.
    public var workerID: Int? { state.withLock { $0.workerID } }

    /// Whether this node may accept sends now: it holds its lease and the lease has not run
    /// out (by this node's clock, less the margin).
    public var isValid: Bool {
        let now = clock.nowMillis()
        return state.withLock { !$0.lost && $0.workerID != nil && now < $0.validUntil }
    }

    /// Takes the lease of `worker` (nil: the lowest worker id whose lease is free or expired).
    ///
    /// - Throws: `conflict` when `worker` is held by a live lease (or, for nil, all 1,024 are);
    ///   `unavailable` when PostgreSQL cannot be reached.
    @discardableResult
    public func acquire(worker: Int?) async throws -> Int {
        let now = clock.nowMillis()
        let until = now + leaseMs
        let count = Int32(clamping: sessions())
        let maxSessions = Int32(clamping: identity.maxSessions)
        let candidates: [Int32] = worker.map { [Int32($0)] } ?? Array(0...1023)
        let id = identity
        let taken: Int32? = try await store.access { [self] in
            // A few rounds: another node may take the same free id between our read and write.
            for _ in 0..<8 {
                let rows = try await store.client.query(
                    """
                    INSERT INTO cluster_nodes AS n(worker_id, node_id, instance, ws_url, longpoll_url, sessions, max_sessions, lease_until, renewed_at)
                    SELECT c.worker_id, \(id.nodeID), \(instance), \(id.wsURL), \(id.longpollURL), \(count), \(maxSessions), \(until), \(now)
                    FROM unnest(\(candidates)) AS c(worker_id)
                    WHERE NOT EXISTS (SELECT 1 FROM cluster_nodes o WHERE o.worker_id = c.worker_id AND o.lease_until >= \(now))
                    ORDER BY c.worker_id LIMIT 1
                    ON CONFLICT (worker_id) DO UPDATE SET
                        node_id = excluded.node_id, instance = excluded.instance, ws_url = excluded.ws_url,
                        longpoll_url = excluded.longpoll_url, sessions = excluded.sessions, max_sessions = excluded.max_sessions,
                        draining = false, lease_until = excluded.lease_until, renewed_at = excluded.renewed_at
                    WHERE n.lease_until < \(now)
                    RETURNING n.worker_id
                    """, logger: logger)
                for try await worker in rows.decode(Int32.self) { return worker }
                // Nothing free at all: no point in another round.
                var free = false
                for try await _ in try await store.client.query(
                    """
                    SELECT 1 FROM unnest(\(candidates)) AS c(worker_id)
                    WHERE NOT EXISTS (SELECT 1 FROM cluster_nodes o WHERE o.worker_id = c.worker_id AND o.lease_until >= \(now)) LIMIT 1
                    """, logger: logger)
                {
                    free = true
                }
                if !free { return nil }
            }
            return nil
        }
        guard let taken else {
            if let worker {
                let holder = try await holder(of: worker)
                throw GatewayError(.conflict, "worker id \(worker) is leased by node '\(holder ?? "?")' (set node.worker_id: auto, or another id)")
            }
            throw GatewayError(.conflict, "every worker id 0...1023 is leased by a live node")
        }
        state.withLock { state in
            state.workerID = Int(taken)
            state.validUntil = until - marginMs
            state.lost = false
        }
        logger.info("node lease taken", metadata: ["gateway.node": "\(id.nodeID)", "gateway.worker_id": "\(taken)", "gateway.lease_ms": "\(leaseMs)"])
        return Int(taken)
    }

    /// The node holding `worker`'s live lease, if any.
    func holder(of worker: Int) async throws -> String? {
        let now = clock.nowMillis()
        return try await store.access { [self] in
            let rows = try await store.client.query(
                "SELECT node_id FROM cluster_nodes WHERE worker_id = \(Int32(worker)) AND lease_until >= \(now)", logger: logger)
            for try await node in rows.decode(String.self) { return node }
            return nil
        }
    }

    /// Extends the lease by `leaseMs` from now and reports the live sessions. Returns whether
    /// the lease is held; throws (and keeps the old deadline) when PostgreSQL cannot be reached.
    @discardableResult
    public func renew() async throws -> Bool {
        guard let worker = workerID, !state.withLock({ $0.lost }) else { return false }
        let now = clock.nowMillis()
        let until = now + leaseMs
        let count = Int32(clamping: sessions())
        let held: Bool = try await store.access { [self] in
            let rows = try await store.client.query(
                """
                UPDATE cluster_nodes SET lease_until = \(until), renewed_at = \(now), sessions = \(count)
                WHERE worker_id = \(Int32(worker)) AND instance = \(instance)
                RETURNING 1
                """, logger: logger)
            for try await _ in rows { return true }
            return false
        }
        state.withLock { state in
            if held {
                state.validUntil = max(state.validUntil, until - marginMs)
            } else {
                state.lost = true
            }
        }
        if !held {
            logger.error("node lease lost: another node holds worker id \(worker); refusing sends", metadata: ["gateway.node": "\(identity.nodeID)"])
        }
        return held
    }

    /// Marks this node draining (`/v1/discover` stops naming it).
    public func setDraining() async throws {
        guard let worker = workerID else { return }
        try await store.access { [self] in
            for try await _ in try await store.client.query(
                "UPDATE cluster_nodes SET draining = true WHERE worker_id = \(Int32(worker)) AND instance = \(instance)", logger: logger) {}
        }
    }

    /// Gives the worker id back at once (a clean shutdown).
    public func release() async throws {
        guard let worker = workerID else { return }
        state.withLock { state in
            state.validUntil = .min
            state.lost = true
        }
        try await store.access { [self] in
            for try await _ in try await store.client.query(
                "DELETE FROM cluster_nodes WHERE worker_id = \(Int32(worker)) AND instance = \(instance)", logger: logger) {}
        }
        logger.info("node lease released", metadata: ["gateway.node": "\(identity.nodeID)", "gateway.worker_id": "\(worker)"])
    }

    /// Renews every `leaseMs / 3` until shutdown. The lease itself is released when the
    /// store closes (`LeaseGuardedMessageStore.close`), after the last queued commit.
    public func run() async throws {
        let interval = Duration.milliseconds(max(10, leaseMs / 3))
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            do {
                try await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
            } catch {
                break
            }
            do {
                try await renew()
            } catch {
                logger.warning("node lease renewal failed", metadata: ["error": "\(error)"])
            }
        }
    }

    /// Live nodes, least loaded first: not draining ones, or with `includingDraining` all.
    public func liveNodes(includingDraining: Bool = false) async throws -> [ClusterNode] {
        let now = clock.nowMillis()
        return try await store.access { [self] in
            let rows = try await store.client.query(
                """
                SELECT node_id, worker_id, ws_url, longpoll_url, sessions, max_sessions FROM cluster_nodes
                WHERE lease_until >= \(now) AND (\(includingDraining) OR NOT draining)
                ORDER BY sessions::float8 / greatest(max_sessions, 1), node_id
                """, logger: logger)
            var nodes: [ClusterNode] = []
            for try await (node, worker, ws, longpoll, sessions, maxSessions) in rows.decode((String, Int32, String, String, Int32, Int32).self) {
                nodes.append(
                    ClusterNode(
                        id: node, workerID: Int(worker), wsURL: ws, longpollURL: longpoll, sessions: Int(sessions), maxSessions: Int(maxSessions)))
            }
            return nodes
        }
    }
}

/// The message store of a cluster node: refuses commits with `unavailable` while the node's
/// lease is not valid (its worker id may be about to go to another node, whose ids could then
/// collide with this one's); everything else goes to the store as is.
public struct LeaseGuardedMessageStore: MessageStore {
    let store: any MessageStore
    let lease: NodeLease

    public init(store: any MessageStore, lease: NodeLease) {
        self.store = store
        self.lease = lease
    }

    public func commit(_ batch: [PendingMessage]) async throws -> [CommitOutcome] {
        guard lease.isValid else {
            throw GatewayError.unavailable("this node's cluster lease has expired; reconnect through /v1/discover")
        }
        return try await store.commit(batch)
    }

    public func inbox(user: String, after: Int64, limit: Int) async throws -> (entries: [InboxEntry], more: Bool) {
        try await store.inbox(user: user, after: after, limit: limit)
    }

    public func inboxHead(user: String) async throws -> Int64 { try await store.inboxHead(user: user) }

    public func history(conversation: String, before: UInt64?, limit: Int) async throws -> (messages: [StoredMessage], more: Bool) {
        try await store.history(conversation: conversation, before: before, limit: limit)
    }

    public func message(from sender: String, clientMsgID: String) async throws -> StoredMessage? {
        try await store.message(from: sender, clientMsgID: clientMsgID)
    }

    public func lastMessageID() async throws -> UInt64? { try await store.lastMessageID() }

    public func statistics() async throws -> StoreStatistics { try await store.statistics() }

    /// Gives the worker id back (every queued commit is done by now), then closes the store.
    public func close() async throws {
        try? await lease.release()
        try await store.close()
    }
}
