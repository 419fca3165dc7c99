import GatewayCore
import NIOCore
import PostgresNIO

extension PostgresStore: DeviceStore {
    /// Registers a target, serialized per user on every node by a transaction-level advisory
    /// lock on the user (so `maxPerUser` holds when two nodes register for the same user at once).
    public func registerTarget(_ target: PushTarget, maxPerUser: Int) async throws -> (target: PushTarget, created: Bool) {
        let fields = JSONValue.object(target.fields).jsonText
        let logger = self.logger
        return try await access { [self] in
            try await client.withTransaction(logger: logger) { connection in
                try await connection.query("SELECT pg_advisory_xact_lock(hashtextextended(\("push:" + target.user), 0))", logger: logger)
                let existing = try await connection.query(
                    """
                    UPDATE push_targets SET device = \(target.device), fields = \(fields)
                    WHERE user_id = \(target.user) AND platform = \(target.platform.rawValue) AND address = \(target.address)
                    RETURNING id, created_at
                    """, logger: logger)
                for try await (id, createdAt) in existing.decode((String, Int64).self) {
                    var stored = target
                    stored.id = id
                    stored.createdAt = createdAt
                    return (stored, false)
                }
                var count = 0
                for try await n in try await connection.query(
                    "SELECT count(*) FROM push_targets WHERE user_id = \(target.user)", logger: logger
                ).decode(Int64.self) {
                    count = Int(n)
                }
                guard count < maxPerUser else {
                    throw GatewayError(.conflict, "at most \(maxPerUser) push targets per user; delete one first")
                }
                try await connection.query(
                    """
                    INSERT INTO push_targets(id, user_id, device, platform, address, fields, created_at)
                    VALUES (\(target.id), \(target.user), \(target.device), \(target.platform.rawValue), \(target.address), \(fields), \(target.createdAt))
                    """, logger: logger)
                return (target, true)
            }
        }
    }

    static let targetColumns = "id, user_id, device, platform, address, fields, created_at"

    public func targets(of user: String) async throws -> [PushTarget] {
        try await access { [self] in
            try await Self.targets(
                client.query(
                    "SELECT \(unescaped: Self.targetColumns) FROM push_targets WHERE user_id = \(user) ORDER BY created_at, id COLLATE \"C\"",
                    logger: logger))
        }
    }

    /// One query for all of them.
    public func targets(of users: [String]) async throws -> [PushTarget] {
        if users.isEmpty { return [] }
        return try await access { [self] in
            try await Self.targets(
                client.query(
                    """
                    SELECT \(unescaped: Self.targetColumns) FROM push_targets WHERE user_id = ANY(\(users))
                    ORDER BY user_id COLLATE "C", created_at, id COLLATE "C"
                    """, logger: logger))
        }
    }

    public func target(id: String) async throws -> PushTarget? {
        try await access { [self] in
            try await Self.targets(client.query("SELECT \(unescaped: Self.targetColumns) FROM push_targets WHERE id = \(id)", logger: logger)).first
        }
    }

    /// Removes the target; its queued jobs go with it (`ON DELETE CASCADE`).
    public func removeTarget(id: String, user: String?) async throws -> Bool {
        try await access { [self] in
            let rows =
                if let user {
                    try await client.query("DELETE FROM push_targets WHERE id = \(id) AND user_id = \(user) RETURNING 1", logger: logger)
                } else {
                    try await client.query("DELETE FROM push_targets WHERE id = \(id) RETURNING 1", logger: logger)
                }
            var removed = false
            for try await _ in rows { removed = true }
            return removed
        }
    }

    /// The targets of `rows` (`targetColumns`); a row of an unknown platform is skipped.
    static func targets(_ rows: PostgresRowSequence) async throws -> [PushTarget] {
        var targets: [PushTarget] = []
        for try await (id, user, device, platform, address, fields, createdAt) in rows.decode(
            (String, String, String, String, String, String, Int64).self)
        {
            guard let platform = PushPlatform(rawValue: platform) else { continue }
            let object = (try? JSONParser.parse(Array(fields.utf8)))?.objectValue ?? JSONObject()
            targets.append(
                PushTarget(id: id, user: user, device: device, platform: platform, address: address, fields: object, createdAt: createdAt))
        }
        return targets
    }
}

extension PostgresStore: PushQueue {
    /// The whole call is one statement (`chat_push_enqueue`): one round trip, one transaction.
    public func enqueue(_ items: [PushQueueItem], collapseMs: Int64, maxListed: Int) async throws {
        if items.isEmpty { return }
        var users: [String] = [], targets: [String] = [], keys: [String] = [], dues: [Int64] = [], seqs: [Int64] = []
        var ids: [Int64] = [], entries: [ByteBuffer] = [], tails: [ByteBuffer] = [], bodies: [ByteBuffer] = [], hasBodies: [Bool] = []
        for item in items {
            users.append(item.user)
            targets.append(item.targetID)
            keys.append(item.collapseKey)
            dues.append(item.due)
            seqs.append(item.seq)
            ids.append(Int64(bitPattern: item.messageID))
            entries.append(ByteBuffer(bytes: item.entry))
            tails.append(ByteBuffer(bytes: [UInt8(ascii: ",")] + item.entry + [UInt8(ascii: "]")]))
            bodies.append(ByteBuffer(bytes: item.body ?? []))
            hasBodies.append(item.body != nil)
        }
        let listed = Int32(clamping: maxListed)
        let query: PostgresQuery = """
            SELECT chat_push_enqueue(\(users), \(targets), \(keys), \(dues), \(seqs), \(ids), \(entries), \(tails), \(bodies), \(hasBodies), \
            \(collapseMs), \(listed))
            """
        try await access { [client, logger] in
            let rows = try await client.query(query, logger: logger)
            for try await _ in rows {}
        }
    }

    /// One statement: picks up to `limit` due, unleased jobs with `FOR UPDATE SKIP LOCKED` (a
    /// job another node is claiming at this moment is skipped, not waited for) and sets their
    /// lease, so each job goes to one worker of the whole cluster. Expired collapse windows are
    /// removed on the way.
    public func claimDue(now: Int64, limit: Int, leaseMs: Int64) async throws -> [PushJob] {
        let until = now + leaseMs
        let limit = Int64(max(limit, 0))
        return try await access { [self] in
            let rows = try await client.query(
                """
                WITH expired AS (
                    DELETE FROM push_windows WHERE until < \(now)
                ), picked AS (
                    SELECT id FROM push_jobs WHERE due <= \(now) AND claimed_until <= \(now)
                    ORDER BY due, id LIMIT \(limit)
                    FOR UPDATE SKIP LOCKED
                )
                UPDATE push_jobs j SET claimed_until = \(until) FROM picked WHERE j.id = picked.id
                RETURNING j.id, j.user_id, j.target_id, j.collapse_key, j.due, j.attempts, j.count, j.max_seq, j.max_id, j.messages, j.body
                """, logger: logger)
            var jobs: [PushJob] = []
            for try await row in rows {
                let (id, user, target, key, due, attempts, count, maxSeq, maxID, messages, body) = try row.decode(
                    (Int64, String, String, String, Int64, Int32, Int32, Int64, Int64, ByteBuffer, ByteBuffer?).self)
                jobs.append(
                    PushJob(
                        id: id, user: user, targetID: target, collapseKey: key, due: due, attempts: Int(attempts), count: Int(count),
                        maxSeq: maxSeq, maxMessageID: UInt64(bitPattern: maxID), messages: Array(buffer: messages),
                        body: body.map { Array(buffer: $0) }))
            }
            return jobs.sorted { ($0.due, $0.id) < ($1.due, $1.id) }
        }
    }

    public func complete(_ id: Int64) async throws {
        try await access { [self] in
            try await client.query("DELETE FROM push_jobs WHERE id = \(id)", logger: logger)
            return ()
        }
    }

    public func reschedule(_ id: Int64, due: Int64, attempts: Int) async throws {
        try await access { [self] in
            try await client.query(
                "UPDATE push_jobs SET due = \(due), attempts = \(Int32(clamping: attempts)), claimed_until = 0 WHERE id = \(id)", logger: logger)
            return ()
        }
    }

    public func cancel(user: String, confirmation: PushConfirmation, now: Int64) async throws -> Int {
        try await access { [self] in
            let rows =
                switch confirmation {
                case .delivered(let seq):
                    try await client.query(
                        """
                        DELETE FROM push_jobs WHERE user_id = \(user) AND claimed_until <= \(now) AND max_seq > 0 AND max_seq <= \(seq)
                        RETURNING 1
                        """, logger: logger)
                case .read(let conversation, let upTo):
                    try await client.query(
                        """
                        DELETE FROM push_jobs
                        WHERE user_id = \(user) AND claimed_until <= \(now) AND collapse_key = \(conversation) AND max_id <= \(Int64(bitPattern: upTo))
                        RETURNING 1
                        """, logger: logger)
                }
            var removed = 0
            for try await _ in rows { removed += 1 }
            return removed
        }
    }

    public func nextDue() async throws -> Int64? {
        try await access { [self] in
            let rows = try await client.query("SELECT min(greatest(due, claimed_until)) FROM push_jobs", logger: logger)
            for try await due in rows.decode(Int64?.self) { return due }
            return nil
        }
    }

    public func queuedCount() async throws -> Int {
        try await access { [self] in
            let rows = try await client.query("SELECT count(*) FROM push_jobs", logger: logger)
            for try await count in rows.decode(Int64.self) { return Int(count) }
            return 0
        }
    }
}
