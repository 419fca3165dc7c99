import Dispatch
import GatewayCore
import Testing
@testable import SQLiteStore

@Suite("EmbeddedStore faults")
struct EmbeddedStoreFaultTests {
    @Test func aClosedStoreIsUnavailable() async throws {
        try await withStore { store, _ in
            _ = try await store.commit([direct(1, from: "alice", to: "bob")])
            try await store.close()
            try await store.close()  // closing again does nothing

            let commitError = await #expect(throws: GatewayError.self) {
                try await store.commit([direct(2, from: "alice", to: "bob")])
            }
            #expect(commitError?.code == .unavailable)
            let readError = await #expect(throws: GatewayError.self) {
                try await store.inbox(user: "bob", after: 0, limit: 10)
            }
            #expect(readError?.code == .unavailable)
            let groupError = await #expect(throws: GatewayError.self) {
                try await store.group("g_1")
            }
            #expect(groupError?.code == .unavailable)
        }
    }

    @Test func aFullDiskIsUnavailableAndStoresNothing() async throws {
        try await withStore { store, _ in
            _ = try await store.commit([direct(1, from: "alice", to: "bob")])
            // Cap the file at its current size: the next batch that needs a page fails with
            // SQLITE_FULL, as on a full disk.
            let pages = try await store.pool.writeWithoutTransaction { db -> Int in
                let pages = try Int.fetchOne(db, sql: "PRAGMA page_count") ?? 0
                try db.execute(sql: "PRAGMA max_page_count = \(pages)")
                return pages
            }
            #expect(pages > 0)
            let big = String(repeating: "x", count: 16_384)
            let batch = (2...20).map { id in
                PendingMessage(message: message(UInt64(id), from: "alice", to: .user("bob"), body: "\"\(big)\""), inboxes: ["alice", "bob"])
            }
            let error = await #expect(throws: GatewayError.self) { try await store.commit(batch) }
            #expect(error?.code == .unavailable)
            #expect(try await store.inboxHead(user: "bob") == 1)
            #expect(try await store.statistics().messages == 1)

            try await store.pool.writeWithoutTransaction { db in
                try db.execute(sql: "PRAGMA max_page_count = 1073741823")
            }
            let outcomes = try await store.commit(batch)
            #expect(outcomes.last?.storedSeqs == [InboxSeq(user: "alice", seq: 20), InboxSeq(user: "bob", seq: 20)])
        }
    }

    @Test func aBusyDatabaseIsUnavailable() async throws {
        try await withStore { store, path in
            // A second store on the same file, as another process would be, waiting 50 ms at most.
            let other = try EmbeddedStore(path: path, durability: .full, busyTimeout: 0.05, logger: nil)
            let locked = Signal()
            let release = Signal()
            async let holding: Void = store.pool.writeWithoutTransaction { db in
                try db.execute(sql: "BEGIN IMMEDIATE")
                locked.signal()
                release.wait()
                try db.execute(sql: "ROLLBACK")
            }
            await locked.waitAsync()
            let error = await #expect(throws: GatewayError.self) {
                try await other.commit([direct(1, from: "alice", to: "bob")])
            }
            #expect(error?.code == .unavailable)
            release.signal()
            try await holding

            _ = try await other.commit([direct(1, from: "alice", to: "bob")])
            #expect(try await store.inboxHead(user: "bob") == 1)
            try await other.close()
        }
    }
}

/// A one-shot signal between a GRDB writer thread and a test task; the writer side blocks
/// (it is on GRDB's own dispatch queue, not on the cooperative pool).
final class Signal: Sendable {
    private let semaphore = DispatchSemaphore(value: 0)

    func signal() { semaphore.signal() }

    func wait() { semaphore.wait() }

    /// Waits without blocking a cooperative thread.
    func waitAsync() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            DispatchQueue.global().async {
                self.semaphore.wait()
                continuation.resume()
            }
        }
    }
}
