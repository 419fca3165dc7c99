import GRDB
import GatewayCore

extension EmbeddedStore: ReceiptStore {
    /// Moves `user`'s read position in `conversation` forward (never back).
    public func markRead(user: String, conversation: String, upTo: UInt64) async throws -> Bool {
        try await write { db in
            let upsert = try db.cachedStatement(sql: """
                INSERT INTO read_positions(conversation, user, up_to) VALUES (?, ?, ?)
                ON CONFLICT(conversation, user) DO UPDATE SET up_to = excluded.up_to WHERE excluded.up_to > up_to
                """)
            try upsert.execute(arguments: [conversation, user, Int64(bitPattern: upTo)])
            return db.changesCount > 0
        }
    }

    public func readPositions(conversation: String) async throws -> [String: UInt64] {
        try await read { db in
            let statement = try db.cachedStatement(sql: "SELECT user, up_to FROM read_positions WHERE conversation = ?")
            var positions: [String: UInt64] = [:]
            let rows = try Row.fetchCursor(statement, arguments: [conversation])
            while let row = try rows.next() {
                let user: String = try row.decode(atIndex: 0)
                let upTo: Int64 = try row.decode(atIndex: 1)
                positions[user] = UInt64(bitPattern: upTo)
            }
            return positions
        }
    }
}
