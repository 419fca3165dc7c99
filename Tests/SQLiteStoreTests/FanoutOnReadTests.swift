import Foundation
import GRDB
import GatewayCore
import GatewayTesting
import Testing
@testable import SQLiteStore

/// The two stores that must behave alike: the embedded one (with a tiny materialization chunk, so
/// every test crosses chunk boundaries) and `InMemoryStore`.
enum StoreKind: String, CaseIterable, CustomTestStringConvertible {
    case sqlite
    case memory

    var testDescription: String { rawValue }
}

typealias ChatStore = MessageStore & GroupStore

/// Runs `body` with a fresh store of `kind`; the SQLite one materializes 3 messages per
/// transaction.
func withChatStore(_ kind: StoreKind, _ body: (any ChatStore) async throws -> Void) async throws {
    switch kind {
    case .memory:
        try await body(InMemoryStore())
    case .sqlite:
        try await withTemporaryDirectory { directory in
            let store = try EmbeddedStore(path: directory + "/chat.db", durability: .relaxed, busyTimeout: 5, logger: nil, materializationChunk: 3)
            do {
                try await body(store)
            } catch {
                try? await store.close()
                throw error
            }
            try await store.close()
        }
    }
}

/// A message to `group` as the gateway commits it: fanout-on-read (only the sender's inbox, the
/// others live only) or write fanout (every member's inbox).
func groupMessage(_ id: UInt64, from: String, group: String, members: [String], readFanout: Bool) -> PendingMessage {
    let m = message(id, from: from, to: .group(group))
    return readFanout
        ? PendingMessage(message: m, inboxes: [from], liveOnly: members.filter { $0 != from })
        : PendingMessage(message: m, inboxes: members)
}

extension MessageStore {
    /// Every entry of `user`'s inbox, paging with small pages as a device would.
    func syncAll(_ user: String, page: Int = 4) async throws -> [InboxEntry] {
        var all: [InboxEntry] = []
        var since: Int64 = 0
        while true {
            let result = try await inbox(user: user, after: since, limit: page)
            all += result.entries
            since = result.entries.last?.seq ?? since
            if !result.more { return all }
        }
    }
}

/// What every inbox must satisfy: seqs 1...n, each message once.
func expectWellFormed(_ entries: [InboxEntry], of user: String, sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(entries.map(\.seq) == Array(1...Int64(max(entries.count, 1))).prefix(entries.count).map { $0 }, "\(user): seqs not contiguous", sourceLocation: sourceLocation)
    #expect(Set(entries.map(\.message.id)).count == entries.count, "\(user): a message twice", sourceLocation: sourceLocation)
}

/// The ids of `group`'s messages in `entries`, in inbox order.
func groupIDs(_ entries: [InboxEntry], _ group: String) -> [UInt64] {
    entries.filter { $0.message.to == .group(group) }.map(\.message.id)
}

@Suite("Fanout-on-read in the stores")
struct FanoutOnReadTests {
    static let members = ["alice", "bob", "carol", "dave"]

    static func makeGroup(_ store: any ChatStore, id: String = "g", members: [String] = members) async throws {
        try await store.createGroup(GroupInfo(id: id, name: id, owner: members[0], members: members, createdAt: 1))
    }

    @Test(arguments: StoreKind.allCases)
    func materializationIsContiguousInIdOrderAndSkipsOwnMessages(kind: StoreKind) async throws {
        try await withChatStore(kind) { store in
            try await Self.makeGroup(store)
            var ids: [UInt64] = []
            var id: UInt64 = 100
            for n in 0..<10 {
                id += 1
                let sender = ["alice", "bob", "carol"][n % 3]
                let outcome = try #require(try await store.commit([groupMessage(id, from: sender, group: "g", members: Self.members, readFanout: true)]).first)
                // Only the sender has an entry at commit: that is the ack's seq.
                #expect(outcome.storedSeqs?.map(\.user) == [sender])
                ids.append(id)
                if n % 4 == 1 {
                    // 1:1 messages to bob land in his inbox at once, between the group's.
                    id += 1
                    _ = try await store.commit([direct(id, from: "erin", to: "bob")])
                }
            }
            for user in Self.members {
                let entries = try await store.syncAll(user)
                expectWellFormed(entries, of: user)
                #expect(groupIDs(entries, "g") == ids, "\(user): the group out of order or incomplete")
                #expect(try await store.inboxHead(user: user) == Int64(entries.count))
            }
            // Nothing more appears on a second read: the cursors moved.
            let bob = try await store.syncAll("bob")
            #expect(bob.count == 10 + 3)
            #expect(try await store.inbox(user: "bob", after: Int64(bob.count), limit: 10).entries.isEmpty)
        }
    }

    @Test(arguments: StoreKind.allCases)
    func pagesMaterializeAsFarAsNeededAndTheHeadIsExact(kind: StoreKind) async throws {
        try await withChatStore(kind) { store in
            try await Self.makeGroup(store)
            let batch = (1...20).map { groupMessage(UInt64($0), from: "alice", group: "g", members: Self.members, readFanout: true) }
            _ = try await store.commit(batch)

            let first = try await store.inbox(user: "bob", after: 0, limit: 2)
            #expect(first.entries.map(\.seq) == [1, 2])
            #expect(first.entries.map(\.message.id) == [1, 2])
            #expect(first.more, "18 more wait, materialized or not")
            let rest = try await store.inbox(user: "bob", after: 2, limit: 100)
            #expect(rest.entries.map(\.seq) == Array(3...20))
            #expect(rest.entries.map(\.message.id) == Array(3...20))
            #expect(!rest.more)

            // The head alone materializes everything (in several transactions for SQLite).
            #expect(try await store.inboxHead(user: "carol") == 20)
            #expect(try await store.syncAll("carol").map(\.message.id) == Array(1...20))
            // The sender's own messages were in its inbox from the start, once.
            #expect(try await store.inboxHead(user: "alice") == 20)
        }
    }

    @Test(arguments: StoreKind.allCases)
    func memberAddedLaterStartsAtTheNewestAndRemovedMemberStops(kind: StoreKind) async throws {
        try await withChatStore(kind) { store in
            try await Self.makeGroup(store)
            for id in UInt64(1)...3 {
                _ = try await store.commit([groupMessage(id, from: "alice", group: "g", members: Self.members, readFanout: true)])
            }
            // dave has read nothing when removed: he keeps what was sent before (as write
            // fanout would have given him), and nothing after.
            _ = try await store.updateMembers(of: "g", add: ["erin"], remove: ["dave"])
            let members = ["alice", "bob", "carol", "erin"]
            for id in UInt64(4)...5 {
                _ = try await store.commit([groupMessage(id, from: "carol", group: "g", members: members, readFanout: true)])
            }
            #expect(try await store.syncAll("dave").map(\.message.id) == [1, 2, 3])
            #expect(try await store.inboxHead(user: "dave") == 3)
            let erin = try await store.syncAll("erin")
            #expect(erin.map(\.message.id) == [4, 5])
            expectWellFormed(erin, of: "erin")
            #expect(try await store.syncAll("bob").map(\.message.id) == [1, 2, 3, 4, 5])

            // Removed, then added again: only what is sent after the return.
            _ = try await store.updateMembers(of: "g", add: [], remove: ["erin"])
            _ = try await store.commit([groupMessage(6, from: "alice", group: "g", members: ["alice", "bob", "carol"], readFanout: true)])
            _ = try await store.updateMembers(of: "g", add: ["erin"], remove: [])
            _ = try await store.commit([groupMessage(7, from: "alice", group: "g", members: members, readFanout: true)])
            let again = try await store.syncAll("erin")
            #expect(again.map(\.message.id) == [4, 5, 7])
            expectWellFormed(again, of: "erin")
        }
    }

    @Test(arguments: StoreKind.allCases)
    func writeAndReadFanoutMixInOneGroupInIdOrder(kind: StoreKind) async throws {
        try await withChatStore(kind) { store in
            try await Self.makeGroup(store)
            let all = Self.members
            // Small group: write fanout.
            _ = try await store.commit([groupMessage(1, from: "alice", group: "g", members: all, readFanout: false)])
            _ = try await store.commit([groupMessage(2, from: "bob", group: "g", members: all, readFanout: false)])
            // It grew past the threshold: fanout-on-read.
            _ = try await store.commit([groupMessage(3, from: "carol", group: "g", members: all, readFanout: true)])
            _ = try await store.commit([groupMessage(4, from: "carol", group: "g", members: all, readFanout: true)])
            // bob reads his inbox; alice and dave do not.
            #expect(try await store.inboxHead(user: "bob") == 4)
            // Back under the threshold: write fanout. An entry now would put 5 ahead of 3 and 4
            // in dave's inbox: he is held back (no seq) and gets 5 after them; alice, the
            // sender, gets 3 and 4 materialized first; bob and carol are up to date.
            let outcome = try #require(try await store.commit([groupMessage(5, from: "alice", group: "g", members: all, readFanout: false)]).first)
            let seqs = try #require(outcome.storedSeqs)
            #expect(Set(seqs.map(\.user)) == ["alice", "bob", "carol"])
            #expect(seqs.first { $0.user == "alice" }?.seq == 5, "alice: 1, 2, then 3 and 4 materialized, then 5")
            #expect(seqs.first { $0.user == "bob" }?.seq == 5)
            _ = try await store.commit([groupMessage(6, from: "bob", group: "g", members: all, readFanout: true)])
            _ = try await store.commit([groupMessage(7, from: "dave", group: "g", members: all, readFanout: false)])

            for user in all {
                let entries = try await store.syncAll(user)
                expectWellFormed(entries, of: user)
                #expect(groupIDs(entries, "g") == [1, 2, 3, 4, 5, 6, 7], "\(user)")
            }
        }
    }

    @Test(arguments: StoreKind.allCases)
    func duplicatesAndBatchesKeepTheSameRules(kind: StoreKind) async throws {
        try await withChatStore(kind) { store in
            try await Self.makeGroup(store)
            // One batch mixing both kinds and a resend of the first message.
            let outcomes = try await store.commit([
                groupMessage(1, from: "alice", group: "g", members: Self.members, readFanout: true),
                groupMessage(2, from: "bob", group: "g", members: Self.members, readFanout: false),
                PendingMessage(
                    message: message(3, from: "alice", to: .group("g"), clientMsgID: "c1"), inboxes: ["alice"],
                    liveOnly: ["bob", "carol", "dave"]),
            ])
            #expect(outcomes[0].storedSeqs == [InboxSeq(user: "alice", seq: 1)])
            // carol and dave have message 1 waiting: held back. bob, the sender, gets 1
            // materialized first; alice is up to date.
            #expect(outcomes[1].storedSeqs == [InboxSeq(user: "alice", seq: 2), InboxSeq(user: "bob", seq: 2)])
            #expect(outcomes[2].duplicate?.message.id == 1)
            #expect(outcomes[2].duplicate?.senderSeq == 1)
            for user in Self.members {
                let entries = try await store.syncAll(user)
                expectWellFormed(entries, of: user)
                #expect(groupIDs(entries, "g") == [1, 2], "\(user)")
            }
            let statistics = try await store.statistics()
            #expect(statistics.messages == 2)
            #expect(statistics.inboxEntries == 8)
        }
    }

    // MARK: SQLite only

    @Test func aFailedMaterializationLeavesNothingAndTheNextOneCompletes() async throws {
        try await withTemporaryDirectory { directory in
            let path = directory + "/chat.db"
            let store = try EmbeddedStore(path: path, durability: .full, busyTimeout: 5, logger: nil, materializationChunk: 100)
            try await FanoutOnReadTests.makeGroup(store)
            _ = try await store.commit((1...6).map { groupMessage(UInt64($0), from: "alice", group: "g", members: Self.members, readFanout: true) })
            // The 4th entry of bob's fails in the middle of the transaction (the writer
            // connection's temporary trigger: the same as a crash there).
            try await store.pool.write { db in
                try db.execute(sql: """
                    CREATE TEMP TRIGGER fail_bob BEFORE INSERT ON inbox WHEN NEW.user = 'bob' AND NEW.seq = 4
                    BEGIN SELECT RAISE(ABORT, 'injected'); END
                    """)
            }
            await #expect(throws: (any Error).self) { try await store.inboxHead(user: "bob") }
            let (entries, cursor) = try await store.pool.read { db in
                (
                    try Int.fetchOne(db, sql: "SELECT count(*) FROM inbox WHERE user = 'bob'") ?? -1,
                    try Int64.fetchOne(db, sql: "SELECT last_id FROM read_fanout_cursors WHERE user = 'bob'") ?? -1
                )
            }
            #expect(entries == 0, "no torn materialization")
            #expect(cursor == 0)
            try await store.pool.write { db in try db.execute(sql: "DROP TRIGGER temp.fail_bob") }
            #expect(try await store.inboxHead(user: "bob") == 6)
            try await store.close()

            // Cursors and entries are durable: reopened, nothing is materialized twice.
            let reopened = try EmbeddedStore(path: path, durability: .full)
            #expect(try await reopened.syncAll("bob").map(\.message.id) == Array(1...6))
            #expect(try await reopened.inboxHead(user: "bob") == 6)
            #expect(try await reopened.syncAll("carol").map(\.seq) == Array(1...6))
            try await reopened.close()
        }
    }

    @Test func aStoreFromBeforeFanoutOnReadGetsCursorsForItsMembers() async throws {
        try await withTemporaryDirectory { directory in
            let path = directory + "/chat.db"
            let old = try DatabaseQueue(path: path)
            try EmbeddedStore.migrator.migrate(old, upTo: "v2-read-positions")
            try await old.write { db in
                try db.execute(sql: """
                    INSERT INTO chat_groups(id, name, owner, created_at) VALUES ('g', 'g', 'alice', 1);
                    INSERT INTO group_members(group_id, user, position) VALUES ('g', 'alice', 1), ('g', 'bob', 2), ('g', 'carol', 3);
                    """)
            }
            try old.close()
            let store = try EmbeddedStore(path: path, durability: .relaxed)
            let members = ["alice", "bob", "carol"]
            _ = try await store.commit([groupMessage(10, from: "alice", group: "g", members: members, readFanout: false)])
            _ = try await store.commit([groupMessage(11, from: "carol", group: "g", members: members, readFanout: true)])
            #expect(try await store.syncAll("bob").map(\.message.id) == [10, 11])
            #expect(try await store.syncAll("alice").map(\.message.id) == [10, 11])
            try await store.close()
        }
    }

    @Test func materializationUsesTheIndexes() async throws {
        try await withStore { store, _ in
            let plans = try await store.pool.read { db in
                [
                    try String.fetchAll(db, sql: """
                        EXPLAIN QUERY PLAN SELECT m.id, m.sender, c.group_id FROM read_fanout_cursors c
                        JOIN messages m ON m.to_id = c.group_id AND m.fanout_on_read = 1 AND m.id > c.last_id
                        WHERE c.user = 'bob' ORDER BY m.id LIMIT 10
                        """, adapter: SuffixRowAdapter(fromIndex: 3)),
                    try String.fetchAll(db, sql: "EXPLAIN QUERY PLAN SELECT max(id) FROM messages WHERE to_id = 'g' AND fanout_on_read = 1", adapter: SuffixRowAdapter(fromIndex: 3)),
                    try String.fetchAll(db, sql: "EXPLAIN QUERY PLAN SELECT user FROM read_fanout_cursors WHERE group_id = 'g' AND last_id < 5", adapter: SuffixRowAdapter(fromIndex: 3)),
                ]
            }
            #expect(plans[0].contains { $0.contains("messages_fanout_on_read") }, "\(plans[0])")
            #expect(plans[0].contains { $0.contains("SEARCH c USING PRIMARY KEY") }, "\(plans[0])")
            #expect(plans[1].contains { $0.contains("messages_fanout_on_read") }, "\(plans[1])")
            #expect(plans[2].contains { $0.contains("read_fanout_cursors_by_group") }, "\(plans[2])")
            #expect(!plans.joined().contains { $0.hasPrefix("SCAN") }, "no full scan: \(plans)")
        }
    }
}
