import GatewayCore
import Logging
import PostgresNIO

/// Long-poll sessions that outlive their node: the table `longpoll_sessions`, one row per
/// session of the cluster (id, user, device, owning lease, the last seq the client confirmed,
/// expiry), written by the owning node when the session opens and then in one statement for all
/// of its sessions every `longpoll.session_ttl_ms / 4`, not per poll.
///
/// A session's owner is a lease, (worker id, instance): a node that died, or stopped, and came
/// back under the same worker id is another instance, so its old sessions are orphaned. A row
/// lives `node.lease_ms` longer than the session's time-to-live, so a session whose node died
/// can be re-homed for `session_ttl_ms` after that node's lease ran out.
extension PostgresClusterBus: LongPollDirectory {
    public var longPolls: (any LongPollDirectory)? { self }

    private var owner: (worker: Int32, instance: String) {
        get throws {
            guard let worker = me else {
                throw GatewayError.unavailable("this node holds no cluster lease; retry shortly", retryAfterMs: 1000)
            }
            return (worker, lease.instance)
        }
    }

    @discardableResult
    public func save(_ records: [LongPollRecord], ended: [String]) async throws -> Set<String> {
        let (worker, instance) = try owner
        let now = clock.nowMillis()
        let extra = lease.leaseMs
        let ids = records.map(\.session)
        let users = records.map(\.user)
        let devices = records.map(\.device)
        let seqs = records.map(\.ackedSeq)
        let expiries = records.map { $0.expiresAt + extra }
        let live = Set(ids)
        let gone = ended.filter { !live.contains($0) }
        let saved: Set<String> = try await store.access { [store, logger] in
            let query: PostgresQuery = """
                WITH gone AS (
                    DELETE FROM longpoll_sessions WHERE session_id = ANY(\(gone)::text[]) AND owner_worker = \(worker) AND owner_instance = \(instance)),
                old AS (DELETE FROM longpoll_sessions WHERE expires_at < \(now) AND NOT (session_id = ANY(\(ids)::text[])))
                INSERT INTO longpoll_sessions AS s (session_id, user_id, device, owner_worker, owner_instance, acked_seq, expires_at)
                SELECT v.id, v.u, v.d, \(worker), \(instance), v.seq, v.exp
                FROM unnest(\(ids)::text[], \(users)::text[], \(devices)::text[], \(seqs)::int8[], \(expiries)::int8[]) AS v(id, u, d, seq, exp)
                ON CONFLICT (session_id) DO UPDATE SET acked_seq = greatest(s.acked_seq, excluded.acked_seq), expires_at = excluded.expires_at
                WHERE s.owner_worker = excluded.owner_worker AND s.owner_instance = excluded.owner_instance
                RETURNING s.session_id
                """
            var saved: Set<String> = []
            for try await id in try await store.client.query(query, logger: logger).decode(String.self) { saved.insert(id) }
            return saved
        }
        return live.subtracting(saved)
    }

    public func locate(session: String) async throws -> LongPollLocation {
        let (worker, instance) = try owner
        let now = clock.nowMillis()
        let found: (LongPollRecord, String?)? = try await store.access { [store, logger] in
            let rows = try await store.client.query(
                """
                SELECT s.user_id, s.device, s.acked_seq, s.expires_at, s.owner_worker, s.owner_instance, n.longpoll_url
                FROM longpoll_sessions s
                LEFT JOIN cluster_nodes n ON n.worker_id = s.owner_worker AND n.instance = s.owner_instance AND n.lease_until >= \(now)
                WHERE s.session_id = \(session)
                """, logger: logger)
            for try await (user, device, seq, expires, ownerWorker, ownerInstance, url) in rows.decode(
                (String, String, Int64, Int64, Int32, String, String?).self)
            {
                let record = LongPollRecord(
                    session: session, user: user, device: device, ackedSeq: seq, expiresAt: expires, owner: "\(ownerWorker)/\(ownerInstance)")
                return (record, url)
            }
            return nil
        }
        guard let (record, url) = found, record.owner != "\(worker)/\(instance)" else { return .unknown }
        if let url { return .remote(url) }
        return record.expiresAt < now ? .unknown : .orphaned(record)
    }

    public func claim(_ record: LongPollRecord, expiresAt: Int64) async throws -> Bool {
        let (worker, instance) = try owner
        let parts = record.owner.split(separator: "/", maxSplits: 1)
        guard parts.count == 2, let oldWorker = Int32(parts[0]) else { return false }
        let oldInstance = String(parts[1])
        let until = expiresAt + lease.leaseMs
        return try await store.access { [store, logger] in
            let rows = try await store.client.query(
                """
                UPDATE longpoll_sessions SET owner_worker = \(worker), owner_instance = \(instance), expires_at = \(until)
                WHERE session_id = \(record.session) AND owner_worker = \(oldWorker) AND owner_instance = \(oldInstance)
                RETURNING 1
                """, logger: logger)
            for try await _ in rows { return true }
            return false
        }
    }
}

extension PostgresStore {
    /// `longpoll_sessions` (see `PostgresClusterBus+LongPoll.swift`).
    static let longPollSessionsMigration = Migration(version: 60, name: "longpoll-sessions", statements: [
        """
        CREATE TABLE longpoll_sessions (
            session_id text PRIMARY KEY,
            user_id text NOT NULL,
            device text NOT NULL,
            owner_worker integer NOT NULL,
            owner_instance text NOT NULL,
            acked_seq bigint NOT NULL,
            expires_at bigint NOT NULL
        )
        """,
        "CREATE INDEX longpoll_sessions_expiry ON longpoll_sessions (expires_at)",
    ])
}
