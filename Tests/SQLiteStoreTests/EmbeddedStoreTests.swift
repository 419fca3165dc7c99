import Foundation
import GatewayCore
import Testing
@testable import SQLiteStore

/// What only the embedded store does (files, durability modes, SQLite specifics). The behaviour
/// every store shares (messages, inboxes, dedupe, history, groups) is in the store conformance
/// suite (`Tests/PostgresStoreTests/StoreConformanceTests.swift`), which runs it on SQLite too.
@Suite("EmbeddedStore messages and inboxes")
struct EmbeddedStoreTests {
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

}
