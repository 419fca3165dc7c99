import GRDB
import GatewayCore

/// Fanout-on-read (docs/GROUPS.md): a message to a large group is written once; each member's
/// inbox entry is made ("materialized") when the member's inbox is next read.
///
/// Invariant, per (user, group) cursor `c`: the user's inbox holds every fanout-on-read message
/// of the group with id <= `c` that they did not send, and none above `c`. Message ids are
/// committed in increasing order (the `Committer` sees to it), so a message committed after a
/// cursor moved always lies above it, and no message is skipped.
extension EmbeddedStore {
    /// Materializes, in transactions of at most `materializationChunk` messages, the messages
    /// waiting for `user` until none waits or the inbox head reaches `through`.
    ///
    /// The probe runs on a reader, so a user with nothing waiting (the common case) never queues
    /// behind the writer.
    func materializeWaiting(user: String, through: Int64?) async throws {
        guard try await read({ db in try Self.hasWaiting(user: user, in: db) }) else { return }
        let chunk = materializationChunk
        let cache = headCache
        while true {
            let (head, more) = try await write { db in try Self.materialize(user: user, group: nil, limit: chunk, heads: cache, in: db) }
            if !more { return }
            if let through, head >= through { return }
        }
    }

    /// Whether a fanout-on-read message of one of `user`'s groups lies above its cursor.
    static func hasWaiting(user: String, in db: Database) throws -> Bool {
        let statement = try db.cachedStatement(sql: """
            SELECT 1 FROM read_fanout_cursors c
            WHERE c.user = ? AND EXISTS (
                SELECT 1 FROM messages m WHERE m.to_id = c.group_id AND m.fanout_on_read = 1 AND m.id > c.last_id)
            LIMIT 1
            """)
        return try Bool.fetchOne(statement, arguments: [user]) != nil
    }

    /// Materializes everything waiting for `user` in `group`, inside the caller's transaction
    /// (a commit whose entry for `user` must come after them, or a removal from the group),
    /// `chunk` messages at a time so memory stays bounded.
    static func materializeAll(user: String, group: String, chunk: Int, heads: HeadCache, in db: Database) throws {
        while try materialize(user: user, group: group, limit: chunk, heads: heads, in: db).more {}
    }

    /// Appends to `user`'s inbox, in id order, the fanout-on-read messages above their cursors
    /// (of every group, or only `group`), at most `limit` messages, skipping the ones `user` sent
    /// (those have an entry since their commit), and moves the cursors past them. Runs in the
    /// caller's write transaction. Returns the inbox head after it and whether messages remain
    /// beyond `limit`. `heads` forgets `user`, whose head this moves.
    @discardableResult
    static func materialize(user: String, group: String?, limit: Int, heads: HeadCache, in db: Database) throws -> (head: Int64, more: Bool) {
        let limit = max(1, limit)
        let fetchLimit = fetchLimit(limit)
        let statement: Statement
        let arguments: StatementArguments
        if let group {
            statement = try db.cachedStatement(sql: """
                SELECT m.id, m.sender, c.group_id FROM read_fanout_cursors c
                JOIN messages m ON m.to_id = c.group_id AND m.fanout_on_read = 1 AND m.id > c.last_id
                WHERE c.user = ? AND c.group_id = ?
                ORDER BY m.id
                LIMIT ?
                """)
            arguments = [user, group, fetchLimit]
        } else {
            statement = try db.cachedStatement(sql: """
                SELECT m.id, m.sender, c.group_id FROM read_fanout_cursors c
                JOIN messages m ON m.to_id = c.group_id AND m.fanout_on_read = 1 AND m.id > c.last_id
                WHERE c.user = ?
                ORDER BY m.id
                LIMIT ?
                """)
            arguments = [user, fetchLimit]
        }
        let headStatement = try db.cachedStatement(sql: "SELECT seq FROM inbox_heads WHERE user = ?")
        var head = try Int64.fetchOne(headStatement, arguments: [user]) ?? 0

        let rows = try Row.fetchCursor(statement, arguments: arguments)
        var waiting: [(id: Int64, sender: String, group: String)] = []
        while let row = try rows.next() {
            waiting.append((try row.decode(atIndex: 0), try row.decode(atIndex: 1), try row.decode(atIndex: 2)))
        }
        let more = waiting.count > limit
        if more { waiting.removeLast(waiting.count - limit) }
        if waiting.isEmpty { return (head, more) }

        var newest: [String: Int64] = [:]
        var entries = InboxRows()
        for message in waiting {
            newest[message.group] = message.id
            if message.sender == user { continue }
            head += 1
            entries.append(user: user, seq: head, messageID: message.id)
        }
        try entries.insert(in: db)
        let moveCursor = try db.cachedStatement(sql: "UPDATE read_fanout_cursors SET last_id = ? WHERE user = ? AND group_id = ?")
        for (group, id) in newest {
            try moveCursor.execute(arguments: [id, user, group])
        }
        if entries.inserted > 0 {
            heads.forget(user)
            try HeadCounter.write(user, head, in: db)
            let count = try db.cachedStatement(sql: "UPDATE counters SET inbox_entries = inbox_entries + ? WHERE id = 1")
            try count.execute(arguments: [entries.inserted])
        }
        return (head, more)
    }

    /// The newest fanout-on-read message of `group`, if it has any.
    static func newestReadFanout(group: String, in db: Database) throws -> Int64? {
        let statement = try db.cachedStatement(sql: "SELECT max(id) FROM messages WHERE to_id = ? AND fanout_on_read = 1")
        return try Int64.fetchOne(statement, arguments: [group])
    }

    /// Members of `group` whose cursor is below `id`: fanout-on-read messages up to `id` may
    /// still wait for them.
    static func membersBehind(group: String, below id: Int64, in db: Database) throws -> Set<String> {
        let statement = try db.cachedStatement(sql: "SELECT user FROM read_fanout_cursors WHERE group_id = ? AND last_id < ?")
        return Set(try String.fetchAll(statement, arguments: [group, id]))
    }

    /// Moves `user`'s cursor in `group` up to `id` (never back): their inbox already has it.
    static func advanceCursor(user: String, group: String, to id: Int64, in db: Database) throws {
        let statement = try db.cachedStatement(sql: """
            UPDATE read_fanout_cursors SET last_id = ? WHERE user = ? AND group_id = ? AND last_id < ?
            """)
        try statement.execute(arguments: [id, user, group, id])
    }

    /// Starts the cursors of newly added members at the group's newest message: a member added
    /// later receives what is sent from then on.
    static func startCursors(users: [String], group: String, in db: Database) throws {
        if users.isEmpty { return }
        let newest = try db.cachedStatement(sql: "SELECT coalesce(max(id), 0) FROM messages WHERE conversation = ?")
        let start = try Int64.fetchOne(newest, arguments: [Address.group(group).conversationKey(sender: "")]) ?? 0
        let insert = try db.cachedStatement(sql: """
            INSERT INTO read_fanout_cursors(user, group_id, last_id) VALUES (?, ?, ?)
            ON CONFLICT(user, group_id) DO UPDATE SET last_id = excluded.last_id
            """)
        for user in users {
            try insert.execute(arguments: [user, group, start])
        }
    }
}
