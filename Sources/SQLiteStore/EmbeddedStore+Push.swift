import GRDB
import GatewayCore

extension EmbeddedStore {
    /// v4: push targets and the durable push queue (docs/PUSH.md).
    ///
    /// - `push_targets`: one row per (user, platform, address); `fields` is the registration's
    ///   JSON object.
    /// - `push_jobs`: a notification waiting to be sent; `claimed_until` is a worker's lease
    ///   (0: unclaimed), `not_before` the end of the collapse window it was created in (a merge
    ///   never makes it due earlier), `messages` the JSON array of its entries (`listed` of them), `body` the
    ///   newest message's body with `include_body`.
    /// - `push_windows`: per (target, collapse key), when its collapse window ends.
    static func registerPushMigration(in migrator: inout DatabaseMigrator) {
        migrator.registerMigration("v4-push") { db in
            try db.execute(sql: """
                CREATE TABLE push_targets (
                    id TEXT PRIMARY KEY,
                    user TEXT NOT NULL,
                    device TEXT NOT NULL,
                    platform TEXT NOT NULL,
                    address TEXT NOT NULL,
                    fields TEXT NOT NULL,
                    created_at INTEGER NOT NULL,
                    UNIQUE (user, platform, address)
                ) WITHOUT ROWID;

                CREATE TABLE push_jobs (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    user TEXT NOT NULL,
                    target_id TEXT NOT NULL REFERENCES push_targets(id) ON DELETE CASCADE,
                    collapse_key TEXT NOT NULL,
                    due INTEGER NOT NULL,
                    attempts INTEGER NOT NULL DEFAULT 0,
                    claimed_until INTEGER NOT NULL DEFAULT 0,
                    not_before INTEGER NOT NULL DEFAULT 0,
                    count INTEGER NOT NULL,
                    listed INTEGER NOT NULL,
                    max_seq INTEGER NOT NULL,
                    max_id INTEGER NOT NULL,
                    messages TEXT NOT NULL,
                    body TEXT
                );
                CREATE INDEX push_jobs_by_due ON push_jobs(due);
                CREATE INDEX push_jobs_by_target ON push_jobs(target_id, collapse_key);
                CREATE INDEX push_jobs_by_user ON push_jobs(user);

                CREATE TABLE push_windows (
                    target_id TEXT NOT NULL,
                    collapse_key TEXT NOT NULL,
                    until INTEGER NOT NULL,
                    PRIMARY KEY (target_id, collapse_key)
                ) WITHOUT ROWID;
                CREATE INDEX push_windows_by_until ON push_windows(until);
                """)
        }
    }
}

extension EmbeddedStore: DeviceStore {
    public func registerTarget(_ target: PushTarget, maxPerUser: Int) async throws -> (target: PushTarget, created: Bool) {
        let fields = JSONValue.object(target.fields).jsonText
        return try await write { db in
            if let row = try Row.fetchOne(
                db, sql: "SELECT id, created_at FROM push_targets WHERE user = ? AND platform = ? AND address = ?",
                arguments: [target.user, target.platform.rawValue, target.address])
            {
                let id: String = row[0]
                try db.execute(sql: "UPDATE push_targets SET device = ?, fields = ? WHERE id = ?", arguments: [target.device, fields, id])
                var stored = target
                stored.id = id
                stored.createdAt = row[1]
                return (stored, false)
            }
            let count = try Int.fetchOne(db, sql: "SELECT count(*) FROM push_targets WHERE user = ?", arguments: [target.user]) ?? 0
            guard count < maxPerUser else {
                throw GatewayError(.conflict, "at most \(maxPerUser) push targets per user; delete one first")
            }
            try db.execute(
                sql: "INSERT INTO push_targets(id, user, device, platform, address, fields, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                arguments: [target.id, target.user, target.device, target.platform.rawValue, target.address, fields, target.createdAt])
            return (target, true)
        }
    }

    public func targets(of user: String) async throws -> [PushTarget] {
        try await read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM push_targets WHERE user = ? ORDER BY created_at, id", arguments: [user]).compactMap(Self.target)
        }
    }

    /// One query per 500 users (SQLite's bound-parameter limit is far above that).
    public func targets(of users: [String]) async throws -> [PushTarget] {
        if users.isEmpty { return [] }
        return try await read { db in
            var all: [PushTarget] = []
            var start = 0
            while start < users.count {
                let chunk = Array(users[start..<min(start + 500, users.count)])
                start += chunk.count
                let marks = Array(repeating: "?", count: chunk.count).joined(separator: ",")
                let rows = try Row.fetchAll(
                    db, sql: "SELECT * FROM push_targets WHERE user IN (\(marks)) ORDER BY user, created_at, id", arguments: StatementArguments(chunk))
                all += rows.compactMap(Self.target)
            }
            return all
        }
    }

    public func target(id: String) async throws -> PushTarget? {
        try await read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM push_targets WHERE id = ?", arguments: [id]).flatMap(Self.target)
        }
    }

    public func removeTarget(id: String, user: String?) async throws -> Bool {
        try await write { db in
            if let user {
                try db.execute(sql: "DELETE FROM push_targets WHERE id = ? AND user = ?", arguments: [id, user])
            } else {
                try db.execute(sql: "DELETE FROM push_targets WHERE id = ?", arguments: [id])
            }
            return db.changesCount > 0
        }
    }

    static func target(_ row: Row) -> PushTarget? {
        guard let platform = PushPlatform(rawValue: row["platform"]) else { return nil }
        let text: String = row["fields"]
        let fields = (try? JSONParser.parse(Array(text.utf8)))?.objectValue ?? JSONObject()
        return PushTarget(
            id: row["id"], user: row["user"], device: row["device"], platform: platform, address: row["address"], fields: fields,
            createdAt: row["created_at"])
    }
}

extension EmbeddedStore: PushQueue {
    public func enqueue(_ items: [PushQueueItem], collapseMs: Int64, maxListed: Int) async throws {
        if items.isEmpty { return }
        try await write { db in
            for item in items { try Self.enqueue(item, collapseMs: collapseMs, maxListed: maxListed, in: db) }
        }
    }

    static func enqueue(_ item: PushQueueItem, collapseMs: Int64, maxListed: Int, in db: Database) throws {
        let entry = String(decoding: item.entry, as: UTF8.self)
        let body = item.body.map { String(decoding: $0, as: UTF8.self) }
        let messageID = Int64(bitPattern: item.messageID)
        try db.execute(
            sql: """
                UPDATE push_jobs SET
                    count = count + 1,
                    messages = CASE WHEN listed < ? THEN substr(messages, 1, length(messages) - 1) || ',' || ? || ']' ELSE messages END,
                    listed = CASE WHEN listed < ? THEN listed + 1 ELSE listed END,
                    max_seq = max(max_seq, ?), max_id = max(max_id, ?), body = ?, due = max(not_before, min(due, ?))
                WHERE id = (SELECT id FROM push_jobs WHERE target_id = ? AND collapse_key = ? AND claimed_until = 0 LIMIT 1)
                """,
            arguments: [maxListed, entry, maxListed, item.seq, messageID, body, item.due, item.targetID, item.collapseKey])
        if db.changesCount > 0 { return }
        guard try Bool.fetchOne(db, sql: "SELECT 1 FROM push_targets WHERE id = ?", arguments: [item.targetID]) != nil else { return }
        let window = try Int64.fetchOne(
            db, sql: "SELECT until FROM push_windows WHERE target_id = ? AND collapse_key = ?", arguments: [item.targetID, item.collapseKey])
        let notBefore = window ?? 0
        let due = max(item.due, notBefore)
        try db.execute(
            sql: """
                INSERT INTO push_windows(target_id, collapse_key, until) VALUES (?, ?, ?)
                ON CONFLICT(target_id, collapse_key) DO UPDATE SET until = excluded.until
                """,
            arguments: [item.targetID, item.collapseKey, due + collapseMs])
        try db.execute(
            sql: """
                INSERT INTO push_jobs(user, target_id, collapse_key, due, not_before, count, listed, max_seq, max_id, messages, body)
                VALUES (?, ?, ?, ?, ?, 1, 1, ?, ?, ?, ?)
                """,
            arguments: [item.user, item.targetID, item.collapseKey, due, notBefore, item.seq, messageID, "[" + entry + "]", body])
    }

    public func claimDue(now: Int64, limit: Int, leaseMs: Int64) async throws -> [PushJob] {
        // An idle worker asks every `poll_ms`: look on a reader first, so the writer (which group
        // commits need) is taken only when something is due.
        let due = try await read { db in
            try Bool.fetchOne(db, sql: "SELECT 1 FROM push_jobs WHERE due <= ? AND claimed_until <= ? LIMIT 1", arguments: [now, now]) != nil
        }
        guard due else { return [] }
        return try await write { db in
            try db.execute(sql: "DELETE FROM push_windows WHERE until < ?", arguments: [now])
            let rows = try Row.fetchAll(
                db, sql: "SELECT * FROM push_jobs WHERE due <= ? AND claimed_until <= ? ORDER BY due, id LIMIT ?", arguments: [now, now, limit])
            var jobs: [PushJob] = []
            for row in rows {
                let id: Int64 = row["id"]
                try db.execute(sql: "UPDATE push_jobs SET claimed_until = ? WHERE id = ?", arguments: [now + leaseMs, id])
                let messages: String = row["messages"]
                let body: String? = row["body"]
                let maxID: Int64 = row["max_id"]
                jobs.append(
                    PushJob(
                        id: id, user: row["user"], targetID: row["target_id"], collapseKey: row["collapse_key"], due: row["due"],
                        attempts: row["attempts"], count: row["count"], maxSeq: row["max_seq"], maxMessageID: UInt64(bitPattern: maxID),
                        messages: Array(messages.utf8), body: body.map { Array($0.utf8) }))
            }
            return jobs
        }
    }

    public func complete(_ id: Int64) async throws {
        try await write { db in try db.execute(sql: "DELETE FROM push_jobs WHERE id = ?", arguments: [id]) }
    }

    public func reschedule(_ id: Int64, due: Int64, attempts: Int) async throws {
        try await write { db in
            try db.execute(sql: "UPDATE push_jobs SET due = ?, attempts = ?, claimed_until = 0 WHERE id = ?", arguments: [due, attempts, id])
        }
    }

    public func cancel(user: String, confirmation: PushConfirmation, now: Int64) async throws -> Int {
        // Clients confirm often and usually nothing waits: look on a reader first, so the writer
        // (which group commits need) is taken only when there is something to cancel.
        let waiting = try await read { db in
            try Bool.fetchOne(db, sql: "SELECT 1 FROM push_jobs WHERE user = ? AND claimed_until <= ? LIMIT 1", arguments: [user, now]) != nil
        }
        guard waiting else { return 0 }
        return try await write { db in
            switch confirmation {
            case .delivered(let seq):
                try db.execute(
                    sql: "DELETE FROM push_jobs WHERE user = ? AND claimed_until <= ? AND max_seq > 0 AND max_seq <= ?", arguments: [user, now, seq])
            case .read(let conversation, let upTo):
                try db.execute(
                    sql: "DELETE FROM push_jobs WHERE user = ? AND claimed_until <= ? AND collapse_key = ? AND max_id <= ?",
                    arguments: [user, now, conversation, Int64(bitPattern: upTo)])
            }
            return db.changesCount
        }
    }

    public func nextDue() async throws -> Int64? {
        try await read { db in try Int64.fetchOne(db, sql: "SELECT min(max(due, claimed_until)) FROM push_jobs") }
    }

    public func queuedCount() async throws -> Int {
        try await read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM push_jobs") ?? 0 }
    }
}
