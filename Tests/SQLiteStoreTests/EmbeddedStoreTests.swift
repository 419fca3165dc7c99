import Foundation
import GatewayCore
import Testing
@testable import SQLiteStore

@Suite("EmbeddedStore messages and inboxes")
struct EmbeddedStoreTests {
    @Test func seqsAreContiguousPerUserAcrossBatches() async throws {
        try await withStore { store, _ in
            let first = try await store.commit([direct(1, from: "alice", to: "bob"), direct(2, from: "alice", to: "bob")])
            #expect(first.map(\.storedSeqs) == [
                [InboxSeq(user: "alice", seq: 1), InboxSeq(user: "bob", seq: 1)],
                [InboxSeq(user: "alice", seq: 2), InboxSeq(user: "bob", seq: 2)],
            ])
            let second = try await store.commit([direct(3, from: "bob", to: "alice")])
            #expect(second.map(\.storedSeqs) == [[InboxSeq(user: "bob", seq: 3), InboxSeq(user: "alice", seq: 3)]])
            let third = try await store.commit([direct(4, from: "alice", to: "carol"), direct(5, from: "carol", to: "alice")])
            #expect(third.map(\.storedSeqs) == [
                [InboxSeq(user: "alice", seq: 4), InboxSeq(user: "carol", seq: 1)],
                [InboxSeq(user: "carol", seq: 2), InboxSeq(user: "alice", seq: 5)],
            ])

            let alice = try await store.allEntries(of: "alice")
            #expect(alice.map(\.seq) == [1, 2, 3, 4, 5])
            #expect(alice.map(\.message.id) == [1, 2, 3, 4, 5])
            #expect(try await store.allEntries(of: "bob").map(\.message.id) == [1, 2, 3])
            #expect(try await store.allEntries(of: "carol").map(\.seq) == [1, 2])
            #expect(try await store.inboxHead(user: "alice") == 5)
            #expect(try await store.inboxHead(user: "bob") == 3)
            #expect(try await store.inboxHead(user: "carol") == 2)
            #expect(try await store.inboxHead(user: "nobody") == 0)
            #expect(try await store.lastMessageID() == 5)
            let statistics = try await store.statistics()
            #expect(statistics.messages == 5)
            #expect(statistics.inboxEntries == 10)
            #expect(statistics.bytes > 0)
        }
    }

    @Test func messageToSelfGetsOneEntry() async throws {
        try await withStore { store, _ in
            let outcomes = try await store.commit([direct(7, from: "alice", to: "alice")])
            #expect(outcomes.map(\.storedSeqs) == [[InboxSeq(user: "alice", seq: 1)]])
            let entries = try await store.allEntries(of: "alice")
            #expect(entries.map(\.seq) == [1])
            #expect(entries.first?.message.conversation == "u:alice|alice")
            #expect(try await store.inboxHead(user: "alice") == 1)
            #expect(try await store.statistics().inboxEntries == 1)
        }
    }

    @Test func emptyStore() async throws {
        try await withStore { store, _ in
            #expect(try await store.commit([]).isEmpty)
            #expect(try await store.lastMessageID() == nil)
            #expect(try await store.message(from: "alice", clientMsgID: "c1") == nil)
            let page = try await store.inbox(user: "alice", after: 0, limit: 10)
            #expect(page.entries.isEmpty && !page.more)
            let history = try await store.history(conversation: "u:alice|bob", before: nil, limit: 10)
            #expect(history.messages.isEmpty && !history.more)
            #expect(try await store.statistics().messages == 0)
        }
    }

    @Test func duplicatesAreAnsweredWithTheOriginal() async throws {
        try await withStore { store, _ in
            let first = try await store.commit([direct(10, from: "alice", to: "bob", clientMsgID: "k1")])
            #expect(first.map(\.storedSeqs) == [[InboxSeq(user: "alice", seq: 1), InboxSeq(user: "bob", seq: 1)]])

            let outcomes = try await store.commit([
                direct(11, from: "alice", to: "bob", clientMsgID: "k1"),  // stored in an earlier batch
                direct(12, from: "alice", to: "bob", clientMsgID: "k2"),
                direct(13, from: "alice", to: "bob", clientMsgID: "k2"),  // earlier in this batch
                direct(14, from: "bob", to: "alice", clientMsgID: "k1"),  // another sender may reuse it
            ])
            #expect(outcomes.count == 4)
            #expect(outcomes[0].duplicate?.message.id == 10)
            #expect(outcomes[0].duplicate?.message == message(10, from: "alice", to: .user("bob"), clientMsgID: "k1"))
            #expect(outcomes[0].duplicate?.senderSeq == 1)
            #expect(outcomes[1].storedSeqs == [InboxSeq(user: "alice", seq: 2), InboxSeq(user: "bob", seq: 2)])
            #expect(outcomes[2].duplicate?.message.id == 12)
            #expect(outcomes[2].duplicate?.senderSeq == 2)
            #expect(outcomes[3].storedSeqs == [InboxSeq(user: "bob", seq: 3), InboxSeq(user: "alice", seq: 3)])

            #expect(try await store.message(from: "alice", clientMsgID: "k1")?.id == 10)
            #expect(try await store.message(from: "alice", clientMsgID: "k2")?.id == 12)
            #expect(try await store.message(from: "bob", clientMsgID: "k1")?.id == 14)
            #expect(try await store.allEntries(of: "alice").map(\.message.id) == [10, 12, 14])
            #expect(try await store.allEntries(of: "bob").map(\.message.id) == [10, 12, 14])
            let statistics = try await store.statistics()
            #expect(statistics.messages == 3)
            #expect(statistics.inboxEntries == 6)
        }
    }

    @Test func duplicateOfAMessageOutsideTheSendersInboxHasSeqZero() async throws {
        try await withStore { store, _ in
            let pending = PendingMessage(message: message(20, from: "system", to: .user("bob")), inboxes: ["bob"])
            #expect(try await store.commit([pending]).map(\.storedSeqs) == [[InboxSeq(user: "bob", seq: 1)]])
            let again = try await store.commit([pending])
            #expect(again.first?.duplicate?.message.id == 20)
            #expect(again.first?.duplicate?.senderSeq == 0)
            #expect(try await store.inboxHead(user: "system") == 0)
        }
    }

    @Test(arguments: [StoreSettings.Durability.full, .relaxed])
    func everythingSurvivesReopening(durability: StoreSettings.Durability) async throws {
        try await withTemporaryDirectory { directory in
            let path = directory + "/nested/data/chat.db"  // the parent directories are created
            let store = try EmbeddedStore(path: path, durability: durability)
            _ = try await store.commit([direct(1, from: "alice", to: "bob"), direct(2, from: "bob", to: "alice")])
            try await store.createGroup(GroupInfo(id: "g_1", name: "G", owner: "alice", members: ["alice", "bob"], createdAt: 5))
            try await store.close()

            let reopened = try EmbeddedStore(path: path, durability: durability)
            #expect(try await reopened.allEntries(of: "alice").map(\.message.id) == [1, 2])
            #expect(try await reopened.inboxHead(user: "bob") == 2)
            #expect(try await reopened.message(from: "bob", clientMsgID: "c2")?.id == 2)
            #expect(try await reopened.lastMessageID() == 2)
            #expect(try await reopened.members(of: "g_1") == ["alice", "bob"])

            let outcomes = try await reopened.commit([
                direct(3, from: "alice", to: "bob", clientMsgID: "c1"),
                direct(4, from: "alice", to: "bob"),
            ])
            #expect(outcomes[0].duplicate?.message.id == 1)
            #expect(outcomes[0].duplicate?.senderSeq == 1)
            #expect(outcomes[1].storedSeqs == [InboxSeq(user: "alice", seq: 3), InboxSeq(user: "bob", seq: 3)])
            let statistics = try await reopened.statistics()
            #expect(statistics.messages == 3)
            #expect(statistics.inboxEntries == 6)
            try await reopened.close()
        }
    }

    @Test(arguments: [(StoreSettings.Durability.full, 2), (.relaxed, 1)])
    func durabilitySetsTheWritersSynchronousLevel(durability: StoreSettings.Durability, level: Int) async throws {
        try await withStore(durability: durability) { store, _ in
            let (synchronous, journalMode) = try await store.pool.writeWithoutTransaction { db in
                (try Int.fetchOne(db, sql: "PRAGMA synchronous"), try String.fetchOne(db, sql: "PRAGMA journal_mode"))
            }
            #expect(synchronous == level)
            #expect(journalMode == "wal")
            // A new file gets small pages, and the writer checkpoints late (both for commit cost).
            let (pageSize, checkpoint) = try await store.pool.writeWithoutTransaction { db in
                (try Int.fetchOne(db, sql: "PRAGMA page_size"), try Int.fetchOne(db, sql: "PRAGMA wal_autocheckpoint"))
            }
            #expect(pageSize == EmbeddedStore.pageSize)
            #expect(checkpoint == EmbeddedStore.checkpointPages)
        }
    }

    /// Commits do not checkpoint (the writer's threshold is far off): the background
    /// checkpoint copies the WAL into the database file on its own connection.
    @Test func theWALIsCheckpointedInTheBackground() async throws {
        try await withStore { store, path in
            func fileSize() -> Int { ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? NSNumber)?.intValue ?? 0 }
            for n in 0..<20 {
                _ = try await store.commit((0..<50).map { direct(UInt64(1 + n * 50 + $0), from: "u\($0)", to: "v\($0)") })
            }
            let frames = try await store.pool.writeWithoutTransaction { db in
                try Int.fetchOne(db, sql: "PRAGMA wal_autocheckpoint")
            }
            #expect(frames == EmbeddedStore.checkpointPages)
            // Only a checkpoint grows the database file past the empty schema (about 20 pages):
            // wait for the messages' pages to arrive there.
            let deadline = ContinuousClock.now + .seconds(10)
            while fileSize() < 64 * EmbeddedStore.pageSize, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(20))
            }
            #expect(fileSize() >= 64 * EmbeddedStore.pageSize, "database file \(fileSize()) bytes")
            #expect(try await store.statistics().messages == 1_000)
        }
    }

    @Test func aFailingBatchStoresNothing() async throws {
        try await withStore { store, _ in
            _ = try await store.commit([direct(100, from: "alice", to: "bob")])
            let before = try await store.statistics()

            // The last message reuses id 100 under another client_msg_id: its insert fails after
            // the earlier messages of the batch and its own inbox rows were written.
            await #expect(throws: (any Error).self) {
                try await store.commit([
                    direct(200, from: "alice", to: "bob"),
                    direct(300, from: "bob", to: "carol"),
                    direct(100, from: "alice", to: "bob", clientMsgID: "other"),
                ])
            }

            #expect(try await store.message(from: "alice", clientMsgID: "c200") == nil)
            #expect(try await store.message(from: "bob", clientMsgID: "c300") == nil)
            #expect(try await store.message(from: "alice", clientMsgID: "other") == nil)
            #expect(try await store.inboxHead(user: "alice") == 1)
            #expect(try await store.inboxHead(user: "bob") == 1)
            #expect(try await store.inboxHead(user: "carol") == 0)
            #expect(try await store.allEntries(of: "bob").map(\.message.id) == [100])
            #expect(try await store.lastMessageID() == 100)
            let after = try await store.statistics()
            #expect(after.messages == before.messages)
            #expect(after.inboxEntries == before.inboxEntries)

            // The same messages go through once the culprit is gone, with the next seqs.
            let retried = try await store.commit([direct(200, from: "alice", to: "bob")])
            #expect(retried.map(\.storedSeqs) == [[InboxSeq(user: "alice", seq: 2), InboxSeq(user: "bob", seq: 2)]])
        }
    }

    @Test func inboxPages() async throws {
        try await withStore { store, _ in
            _ = try await store.commit((1...5).map { direct(UInt64($0), from: "alice", to: "bob") })

            var page = try await store.inbox(user: "bob", after: 0, limit: 2)
            #expect(page.entries.map(\.seq) == [1, 2])
            #expect(page.more)
            page = try await store.inbox(user: "bob", after: 2, limit: 2)
            #expect(page.entries.map(\.seq) == [3, 4])
            #expect(page.more)
            page = try await store.inbox(user: "bob", after: 4, limit: 2)
            #expect(page.entries.map(\.seq) == [5])
            #expect(!page.more)
            page = try await store.inbox(user: "bob", after: 3, limit: 2)  // exactly the rest
            #expect(page.entries.map(\.seq) == [4, 5])
            #expect(!page.more)
            page = try await store.inbox(user: "bob", after: 5, limit: 2)
            #expect(page.entries.isEmpty && !page.more)
            page = try await store.inbox(user: "bob", after: 0, limit: 0)
            #expect(page.entries.isEmpty && page.more)
            page = try await store.inbox(user: "carol", after: 0, limit: 10)
            #expect(page.entries.isEmpty && !page.more)
        }
    }

    @Test func historyPagesNewestFirstAndSharesOneKeyPerPair() async throws {
        try await withStore { store, _ in
            _ = try await store.commit([
                direct(1, from: "alice", to: "bob"), direct(2, from: "bob", to: "alice"),
                direct(3, from: "alice", to: "bob"), direct(4, from: "bob", to: "alice"),
                direct(5, from: "alice", to: "bob"), direct(6, from: "alice", to: "carol"),
                PendingMessage(message: message(7, from: "alice", to: .group("g_1")), inboxes: ["alice", "bob"]),
            ])
            let key = Address.user("bob").conversationKey(sender: "alice")
            #expect(key == Address.user("alice").conversationKey(sender: "bob"))

            var page = try await store.history(conversation: key, before: nil, limit: 2)
            #expect(page.messages.map(\.id) == [5, 4])
            #expect(page.more)
            page = try await store.history(conversation: key, before: 4, limit: 2)
            #expect(page.messages.map(\.id) == [3, 2])
            #expect(page.more)
            page = try await store.history(conversation: key, before: 2, limit: 2)
            #expect(page.messages.map(\.id) == [1])
            #expect(!page.more)
            page = try await store.history(conversation: key, before: UInt64.max, limit: 10)
            #expect(page.messages.map(\.id) == [5, 4, 3, 2, 1])
            #expect(!page.more)
            #expect(page.messages.map(\.from) == ["alice", "bob", "alice", "bob", "alice"])
            #expect(page.messages.map(\.to) == [.user("bob"), .user("alice"), .user("bob"), .user("alice"), .user("bob")])

            #expect(try await store.history(conversation: "u:alice|carol", before: nil, limit: 10).messages.map(\.id) == [6])
            let group = try await store.history(conversation: "g:g_1", before: nil, limit: 10).messages
            #expect(group.map(\.id) == [7])
            #expect(group.first?.to == .group("g_1"))
        }
    }

    @Test func messagesRoundTripExactly() async throws {
        try await withStore { store, _ in
            let messages = [
                message(1, from: "alice", to: .user("bob"), body: #"{"text":"héllo ✓ 👋"}"#, attachments: #"[{"media_id":"m1"}]"#),
                message(2, from: "alice", to: .group("g.team-1"), body: #""plain""#),
                StoredMessage(id: 3, from: "alice", to: .user("bob"), timestamp: -1, clientMsgID: "empty", body: [], attachments: []),
                message(UInt64(Int64.max) - 1, from: "alice", to: .user("bob")),
            ]
            _ = try await store.commit(messages.map { PendingMessage(message: $0, inboxes: ["alice"]) })
            let entries = try await store.allEntries(of: "alice")
            #expect(entries.map(\.message) == messages)
            #expect(try await store.message(from: "alice", clientMsgID: "c1") == messages[0])
            #expect(try await store.lastMessageID() == UInt64(Int64.max) - 1)
        }
    }

    @Test func concurrentCommitsKeepSeqsContiguousAndUnique() async throws {
        try await withStore { store, _ in
            let users = (0..<5).map { "user\($0)" }
            let tasks = 40
            let outcomes = try await withThrowingTaskGroup(of: [CommitOutcome].self) { group in
                for task in 0..<tasks {
                    group.addTask {
                        let batch = (0..<(task % 4 + 1)).map { index in
                            direct(
                                UInt64(task * 10 + index + 1), from: users[task % users.count],
                                to: users[(task + index + 1) % users.count])
                        }
                        return try await store.commit(batch)
                    }
                }
                var all: [CommitOutcome] = []
                for try await batch in group { all += batch }
                return all
            }

            let expectedMessages = (0..<tasks).reduce(0) { $0 + $1 % 4 + 1 }
            #expect(outcomes.count == expectedMessages)
            var seqsByUser: [String: [Int64]] = [:]
            for outcome in outcomes {
                let seqs = try #require(outcome.storedSeqs)
                for seq in seqs { seqsByUser[seq.user, default: []].append(seq.seq) }
            }
            var entryCount = 0
            for user in users {
                let given = (seqsByUser[user] ?? []).sorted()
                #expect(given == Array(1...Int64(given.count)), "seqs given to \(user)")
                let entries = try await store.allEntries(of: user)
                #expect(entries.map(\.seq) == given)
                #expect(Set(entries.map(\.message.id)).count == entries.count, "a message appears once per inbox")
                #expect(try await store.inboxHead(user: user) == Int64(given.count))
                entryCount += entries.count
            }
            let statistics = try await store.statistics()
            #expect(statistics.messages == expectedMessages)
            #expect(statistics.inboxEntries == entryCount)
        }
    }
}
