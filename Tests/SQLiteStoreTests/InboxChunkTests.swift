import Foundation
import GRDB
import GatewayCore
import Testing
@testable import SQLiteStore

/// Inbox entries in chunks (migration v5, `inbox_chunks`): a database of the schema before it
/// opens with every message, entry and seq; a batch writes one row per user's run of entries,
/// and reads page through chunks from any seq.
@Suite("EmbeddedStore inbox chunks", .timeLimit(.minutes(1)))
struct InboxChunkTests {
    /// A file with the schema up to v4 and data written as that schema's commit wrote it (one
    /// inbox row per entry), opened by the current store.
    @Test func aDatabaseOfTheOldSchemaKeepsEveryEntry() async throws {
        try await withTemporaryDirectory { directory in
            let path = directory + "/chat.db"
            let old = try DatabaseQueue(path: path)
            try EmbeddedStore.migrator.migrate(old, upTo: "v4-media")
            // alice and bob exchange 150 messages, ids 1...150, each in both inboxes.
            try await old.write { db in
                #expect(try db.tableExists("inbox"))
                for id in 1...150 {
                    let from = id % 3 == 0 ? "bob" : "alice"
                    let to = from == "alice" ? "bob" : "alice"
                    try db.execute(
                        sql: """
                            INSERT INTO messages(id, conversation, sender, to_kind, to_id, client_msg_id, ts, body, sender_seq)
                            VALUES (?, 'u:alice|bob', ?, 0, ?, ?, ?, ?, ?)
                            """,
                        arguments: [id, from, to, "c\(id)", 1_700_000_000_000 + id, Data(#"{"n":\#(id)}"#.utf8), id])
                    for user in ["alice", "bob"] {
                        try db.execute(sql: "INSERT INTO inbox(user, seq, message_id) VALUES (?, ?, ?)", arguments: [user, id, id])
                    }
                }
                try db.execute(sql: "INSERT INTO inbox_heads(user, seq) VALUES ('alice', 150), ('bob', 150)")
                try db.execute(sql: "UPDATE counters SET messages = 150, inbox_entries = 300")
            }
            try old.close()

            let store = try EmbeddedStore(path: path, durability: .full)
            for user in ["alice", "bob"] {
                let entries = try await store.allEntries(of: user)
                #expect(entries.map(\.seq) == Array(1...150))
                #expect(entries.map(\.message.id) == Array(1...150))
                #expect(entries[41].message.body == Array(#"{"n":42}"#.utf8))
                #expect(try await store.inboxHead(user: user) == 150)
            }
            // A page from the middle, and the dedupe record, history and counters, as before.
            let page = try await store.inbox(user: "bob", after: 99, limit: 3)
            #expect(page.entries.map(\.seq) == [100, 101, 102])
            #expect(page.more)
            #expect(try await store.message(from: "bob", clientMsgID: "c3")?.id == 3)
            #expect(try await store.history(conversation: "u:alice|bob", before: nil, limit: 2).messages.map(\.id) == [150, 149])
            let statistics = try await store.statistics()
            #expect(statistics.messages == 150)
            #expect(statistics.inboxEntries == 300)

            // New commits continue the seqs, and a resend of an old message is a duplicate.
            let outcomes = try await store.commit([direct(151, from: "alice", to: "bob"), direct(152, from: "alice", to: "bob", clientMsgID: "c1")])
            #expect(outcomes[0].storedSeqs == [InboxSeq(user: "alice", seq: 151), InboxSeq(user: "bob", seq: 151)])
            #expect(outcomes[1].duplicate?.message.id == 1)
            #expect(outcomes[1].duplicate?.senderSeq == 1)
            #expect(try await store.allEntries(of: "bob").map(\.seq) == Array(1...151))
            // The `inbox` view shows one row per entry, as the old table did.
            let viewRows = try await store.pool.read { db in
                try Int.fetchOne(db, sql: "SELECT count(*) FROM inbox WHERE user = 'bob' AND message_id = seq") ?? -1
            }
            #expect(viewRows == 151)
            try await store.close()
        }
    }

    /// One batch giving a user 150 entries writes 3 rows (at most 64 ids each); reads start in
    /// the middle of a chunk and cross chunk boundaries.
    @Test func aBatchWritesOneRowPerRunAndReadsCrossChunks() async throws {
        try await withStore { store, _ in
            _ = try await store.commit((1...150).map { direct(UInt64($0), from: "alice", to: "bob") })
            _ = try await store.commit([direct(151, from: "carol", to: "bob")])
            let rows = try await store.pool.read { db in
                try Row.fetchAll(db, sql: "SELECT seq, json_array_length(message_ids) FROM inbox_chunks WHERE user = 'bob' ORDER BY seq")
                    .map { [$0[0] as Int64, $0[1] as Int64] }
            }
            #expect(rows == [[1, 64], [65, 64], [129, 22], [151, 1]])
            for after in [0, 10, 63, 64, 127, 149, 150] {
                let page = try await store.inbox(user: "bob", after: Int64(after), limit: 5)
                let expected = Array((after + 1)...min(after + 5, 151)).map(Int64.init)
                #expect(page.entries.map(\.seq) == expected, "after \(after)")
                #expect(page.entries.map { Int64($0.message.id) } == expected, "after \(after)")
                #expect(page.more == (after + 5 < 151), "after \(after)")
            }
            #expect(try await store.inbox(user: "bob", after: 151, limit: 5).entries.isEmpty)
            #expect(try await store.inbox(user: "bob", after: Int64.max, limit: 5).entries.isEmpty)
            #expect(try await store.statistics().inboxEntries == 150 + 151 + 1)  // alice, bob, carol
        }
    }

    /// A chunk that is not a list of ids is reported, not read as something else.
    @Test func aDamagedChunkIsAnError() async throws {
        try await withStore { store, _ in
            _ = try await store.commit([direct(1, from: "alice", to: "bob")])
            try await store.pool.write { db in try db.execute(sql: "UPDATE inbox_chunks SET message_ids = '[1,x]' WHERE user = 'bob'") }
            await #expect(throws: (any Error).self) { try await store.inbox(user: "bob", after: 0, limit: 10) }
            #expect(try await store.allEntries(of: "alice").count == 1)
        }
    }

    @Test func chunkTextRoundTrips() throws {
        for ids: [Int64] in [[1], [9, 10, 99, 100], [Int64.max, 1 << 40, 123_456_789_012_345]] {
            var text: [UInt8] = [UInt8(ascii: "[")]
            for (index, id) in ids.enumerated() {
                if index > 0 { text.append(UInt8(ascii: ",")) }
                InboxRows.append(id, to: &text)
            }
            text.append(UInt8(ascii: "]"))
            #expect(String(decoding: text, as: UTF8.self) == "[" + ids.map(String.init).joined(separator: ",") + "]")
            #expect(try InboxRows.decode(Data(text), user: "u", seq: 1) == ids)
        }
        for bad in ["", "[]", "[1,]", "[,1]", "1,2", "[1 2]", "[99999999999999999999]"] {
            #expect(throws: DatabaseError.self) { try InboxRows.decode(Data(bad.utf8), user: "u", seq: 1) }
        }
    }
}
