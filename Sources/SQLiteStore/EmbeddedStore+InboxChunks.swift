import Foundation
import GRDB
import GatewayCore

extension EmbeddedStore {
    /// v5: inbox entries in chunks (docs/ARCHITECTURE.md, "Storage layout").
    ///
    /// `inbox_chunks` holds one row per run of consecutive entries of one user written by one
    /// transaction: `seq` is the first entry's seq, `message_ids` the JSON array of the run's
    /// message ids in seq order (entry `k` has seq `seq + k`), at most `InboxRows.maxChunk`
    /// ids. A commit that gives a user several entries writes one row instead of one per
    /// entry: a B-tree insert per user per batch instead of per entry. The `inbox` view shows
    /// the entries one per row, `(user, seq, message_id)`, as the table of v1 did, for standard
    /// tools (`sqlite3 chat.db "SELECT * FROM inbox WHERE user = 'bob'"`).
    ///
    /// The migration moves every existing entry into a chunk of its own, in the same
    /// transaction as the rest of it: an existing database keeps every entry and seq.
    static func registerInboxChunksMigration(_ migrator: inout DatabaseMigrator) {
        migrator.registerMigration("v5-inbox-chunks") { db in
            try db.execute(sql: """
                CREATE TABLE inbox_chunks (
                    user TEXT NOT NULL,
                    seq INTEGER NOT NULL,
                    message_ids TEXT NOT NULL,
                    PRIMARY KEY (user, seq)
                ) WITHOUT ROWID;
                INSERT INTO inbox_chunks(user, seq, message_ids) SELECT user, seq, '[' || message_id || ']' FROM inbox;
                DROP TABLE inbox;
                CREATE VIEW inbox(user, seq, message_id) AS
                    SELECT c.user, c.seq + j.key, j.value FROM inbox_chunks c, json_each(c.message_ids) j;
                """)
        }
    }

    /// Up to `limit + 1` entries of `user`'s inbox above `after`, as (seq, message id), in seq
    /// order: the chunk holding `after + 1` and those after it.
    static func inboxEntries(user: String, after: Int64, limit: Int, in db: Database) throws -> [(seq: Int64, messageID: Int64)] {
        let wanted = limit == Int.max ? Int.max : limit + 1
        // The chunk holding `after + 1` starts at or below it; later chunks start above it.
        let (next, overflow) = after.addingReportingOverflow(1)
        if overflow { return [] }
        let first = try db.cachedStatement(sql: "SELECT max(seq) FROM inbox_chunks WHERE user = ? AND seq <= ?")
        let start = try Int64.fetchOne(first, arguments: [user, next]) ?? next
        let chunks = try db.cachedStatement(sql: "SELECT seq, message_ids FROM inbox_chunks WHERE user = ? AND seq >= ? ORDER BY seq")
        var entries: [(seq: Int64, messageID: Int64)] = []
        let rows = try Row.fetchCursor(chunks, arguments: [user, start])
        while entries.count < wanted, let row = try rows.next() {
            var seq: Int64 = try row.decode(atIndex: 0)
            let ids = try row.withUnsafeData(atIndex: 1) { data in try data.map { try InboxRows.decode($0, user: user, seq: seq) } ?? [] }
            for id in ids {
                if seq > after {
                    entries.append((seq, id))
                    if entries.count == wanted { break }
                }
                seq += 1
            }
        }
        return entries
    }
}
