import Foundation
import GatewayCore
import GatewayTesting
import Logging
import PostgresNIO
import Testing
@testable import PostgresStore

/// What only the PostgreSQL backend has: several nodes (stores) on one database, migrations
/// that nodes start at once, reopening, failures of the server.
@Suite("PostgresStore")
struct PostgresStoreTests {
    @Test func everythingSurvivesReopening() async throws {
        let url = try freshPostgresURL()
        let store = try await openPostgres(url)
        _ = try await store.commit([direct(1, from: "alice", to: "bob"), direct(2, from: "bob", to: "alice")])
        try await store.createGroup(GroupInfo(id: "g_1", name: "G", owner: "alice", members: ["alice", "bob"], createdAt: 5))
        try await store.close()
        await #expect(throws: GatewayError.self) { _ = try await store.inboxHead(user: "bob") }

        let reopened = try await openPostgres(url)
        #expect(try await reopened.allEntries(of: "alice").map(\.message.id) == [1, 2])
        #expect(try await reopened.inboxHead(user: "bob") == 2)
        #expect(try await reopened.message(from: "bob", clientMsgID: "c2")?.id == 2)
        #expect(try await reopened.lastMessageID() == 2)
        #expect(try await reopened.members(of: "g_1") == ["alice", "bob"])
        let outcomes = try await reopened.commit([direct(3, from: "alice", to: "bob", clientMsgID: "c1"), direct(4, from: "alice", to: "bob")])
        #expect(outcomes[0].duplicate?.message.id == 1)
        #expect(outcomes[0].duplicate?.senderSeq == 1)
        #expect(outcomes[1].storedSeqs == [InboxSeq(user: "alice", seq: 3), InboxSeq(user: "bob", seq: 3)])
        #expect(try await reopened.statistics().messages == 3)
        try await reopened.close()
    }

    /// Nodes starting at once on an empty database: each migration is applied once, and
    /// every node opens.
    @Test func nodesStartingAtOnceMigrateOnce() async throws {
        let url = try freshPostgresURL()
        let stores = try await withThrowingTaskGroup(of: PostgresStore.self) { group in
            for _ in 0..<4 { group.addTask { try await openPostgres(url, poolSize: 2) } }
            var stores: [PostgresStore] = []
            for try await store in group { stores.append(store) }
            return stores
        }
        let rows = try await stores[0].client.query("SELECT version FROM schema_migrations ORDER BY version")
        var versions: [Int32] = []
        for try await version in rows.decode(Int32.self) { versions.append(version) }
        #expect(versions == PostgresStore.migrations.map { Int32($0.version) })
        for store in stores { try await store.close() }
    }

    /// Three nodes commit batches for the same users at once, with overlapping users in
    /// different orders: every user's seqs are 1...n with no gap or repeat, every message once
    /// per inbox, and resends of one client_msg_id on every node are stored once.
    @Test func nodesCommittingAtOnceKeepSeqsContiguous() async throws {
        let url = try freshPostgresURL()
        let nodes = [try await openPostgres(url), try await openPostgres(url), try await openPostgres(url)]
        let users = (0..<6).map { "u\($0)" }
        let outcomes = try await withThrowingTaskGroup(of: [CommitOutcome].self) { group in
            for task in 0..<60 {
                group.addTask {
                    let node = nodes[task % nodes.count]
                    var batch = (0..<(task % 5 + 1)).map { index in
                        direct(UInt64(task * 100 + index + 1), from: users[(task + index) % users.count], to: users[(task * 7 + index + 1) % users.count])
                    }
                    // The same resend reaches every node.
                    batch.append(direct(UInt64(task * 100 + 50), from: "resender", to: users[0], clientMsgID: "same"))
                    return try await node.commit(batch)
                }
            }
            var all: [CommitOutcome] = []
            for try await batch in group { all += batch }
            return all
        }
        let sentMessages: Int = (0..<60).map { $0 % 5 + 1 }.reduce(0, +)
        #expect(outcomes.compactMap(\.storedSeqs).count == sentMessages + 1)
        #expect(outcomes.filter { $0.duplicate != nil }.count == 59)
        var seqsByUser: [String: [Int64]] = [:]
        for seqs in outcomes.compactMap(\.storedSeqs) {
            for seq in seqs { seqsByUser[seq.user, default: []].append(seq.seq) }
        }
        for user in users + ["resender"] {
            let given = (seqsByUser[user] ?? []).sorted()
            #expect(given == Array(1...Int64(given.count)), "seqs given to \(user)")
            let entries = try await nodes[1].allEntries(of: user)
            #expect(entries.map(\.seq) == given)
            #expect(Set(entries.map(\.message.id)).count == entries.count)
        }
        let statistics = try await nodes[2].statistics()
        #expect(statistics.inboxEntries == seqsByUser.values.reduce(0) { $0 + $1.count })
        for node in nodes { try await node.close() }
    }

    /// A store whose server is not there answers `unavailable` (the client retries), within
    /// the connect timeout.
    @Test func anUnreachableServerIsUnavailable() async throws {
        _ = try freshPostgresURL()  // skips without PostgreSQL, like the others
        let port = try PostgresTestServer.freePort()
        var configuration = try PostgresStoreConfiguration(url: "postgres://postgres@127.0.0.1:\(port)/none?sslmode=disable")
        configuration.connectTimeout = .seconds(1)
        configuration.requestTimeout = .seconds(1)
        let started = ContinuousClock.now
        let error = await #expect(throws: GatewayError.self) {
            _ = try await PostgresStore.open(configuration, logger: Logger(label: "test.store"))
        }
        #expect(error?.code == .unavailable)
        // Bounded (no endless reconnecting): a few connect timeouts, with room for a loaded
        // 2-core machine running every other suite at once.
        #expect(ContinuousClock.now - started < .seconds(30))
    }

    @Test func urlsAreParsed() throws {
        let full = try PostgresStoreConfiguration(url: "postgresql://chat:p%40ss@db.internal:6432/chatdb?sslmode=require", poolSize: 32)
        #expect(full.host == "db.internal" && full.port == 6432 && full.database == "chatdb")
        #expect(full.username == "chat" && full.password == "p@ss" && full.tlsMode == .require && full.poolSize == 32)
        let plain = try PostgresStoreConfiguration(url: "postgres://app@localhost/chat")
        #expect(plain.port == 5432 && plain.password == nil && plain.tlsMode == .prefer)
        for bad in ["mysql://x@h/db", "postgres://x@h", "postgres:///db", "postgres://x@h/db?sslmode=maybe"] {
            #expect(throws: GatewayError.self, "\(bad)") { _ = try PostgresStoreConfiguration(url: bad) }
        }
    }

    /// `.full` durability commits with `synchronous_commit=on`, `.relaxed` with `off`.
    @Test(arguments: [(StoreSettings.Durability.full, "on"), (.relaxed, "off")])
    func durabilitySetsSynchronousCommit(durability: StoreSettings.Durability, expected: String) async throws {
        let store = try await openPostgres(try freshPostgresURL(), durability: durability)
        let rows = try await store.client.query("SHOW synchronous_commit")
        var value: String?
        for try await setting in rows.decode(String.self) { value = setting }
        #expect(value == expected)
        try await store.close()
    }
}

/// PostgreSQL stopped and started again under the store: `unavailable` while it is down
/// (within the request timeout), nothing committed is lost, and the pool reconnects by itself.
@Suite("PostgresStore across a server restart")
struct PostgresRestartTests {
    @Test func aRestartedServerIsUnavailableThenRecoversWithEverythingCommitted() async throws {
        guard let server = try PostgresTestServer.makePrivate() else {
            try Test.cancel(Comment(rawValue: PostgresTestServer.unavailableReason))
        }
        var configuration = try PostgresStoreConfiguration(url: try server.createDatabase(), poolSize: 1)
        // Generous: the first connection to a server just started on a loaded 2-core machine
        // can take seconds; while the server is down the refusal comes within this bound.
        configuration.requestTimeout = .seconds(10)
        configuration.connectTimeout = .seconds(1)
        let store = try await PostgresStore.open(configuration, logger: Logger(label: "test.store"))
        _ = try await store.commit([direct(1, from: "alice", to: "bob")])

        try server.stop(mode: "fast")
        let refused = await #expect(throws: GatewayError.self) { _ = try await store.commit([direct(2, from: "alice", to: "bob")]) }
        #expect(refused?.code == .unavailable)

        try server.start()
        // The pool reconnects on the next demand; the first attempts may still see the old
        // connections die.
        let deadline = ContinuousClock.now + .seconds(30)
        func retried<T>(_ operation: () async throws -> T) async throws -> T {
            while true {
                do {
                    return try await operation()
                } catch let error as GatewayError where error.code == .unavailable && ContinuousClock.now < deadline {
                    continue
                }
            }
        }
        let outcome = try await retried { try await store.commit([direct(3, from: "alice", to: "bob")]) }
        let seqs = try #require(outcome.first?.storedSeqs)
        #expect(seqs.map(\.user) == ["alice", "bob"])
        let ids = try await retried { try await store.allEntries(of: "bob").map(\.message.id) }
        #expect(ids == [1, 3], "the message committed before the restart is there, the refused one is not")
        #expect(try await retried { try await store.inboxHead(user: "bob") } == 2)
        try await store.close()
        try server.stop()
    }
}
