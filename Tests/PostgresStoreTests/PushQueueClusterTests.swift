import GatewayCore
import Testing
@testable import PostgresStore

/// The push queue shared by several nodes on one database: each notification is claimed by
/// one worker of the whole cluster, and notifications queued on different nodes for the same
/// device and conversation still collapse into one.
@Suite("Push queue across nodes (PostgreSQL)", .timeLimit(.minutes(2)))
struct PushQueueClusterTests {
    static func target(_ id: String, user: String) -> PushTarget {
        PushTarget(id: id, user: user, device: "d", platform: .webhook, address: "https://h/\(id)", fields: ["url": .string("https://h/\(id)")], createdAt: 1)
    }

    static func item(_ target: String, user: String, key: String, id: UInt64, due: Int64 = 0) -> PushQueueItem {
        PushQueueItem(
            user: user, targetID: target, collapseKey: key, due: due, seq: Int64(id), messageID: id, entry: Array(#"{"id":"\#(id)"}"#.utf8),
            body: nil)
    }

    /// 120 jobs, three nodes claiming a few at a time at once: every job is claimed exactly once.
    @Test func eachJobIsClaimedByOneNodeOnly() async throws {
        let url = try freshPostgresURL()
        let nodes = [try await openPostgres(url), try await openPostgres(url), try await openPostgres(url)]
        for n in 0..<40 { _ = try await nodes[0].registerTarget(Self.target("t\(n)", user: "u\(n)"), maxPerUser: 5) }
        // 40 targets × 3 conversations, queued from every node.
        for (index, node) in nodes.enumerated() {
            let items = (0..<40).map { n in Self.item("t\(n)", user: "u\(n)", key: "k\(index)", id: UInt64(index * 100 + n + 1)) }
            try await node.enqueue(items, collapseMs: 0, maxListed: 20)
        }
        #expect(try await nodes[1].queuedCount() == 120)
        let claims = try await withThrowingTaskGroup(of: [Int64].self) { group in
            for node in nodes {
                group.addTask {
                    var mine: [Int64] = []
                    while true {
                        let jobs = try await node.claimDue(now: 10, limit: 7, leaseMs: 60_000)
                        if jobs.isEmpty { return mine }
                        mine += jobs.map(\.id)
                    }
                }
            }
            var all: [[Int64]] = []
            for try await claimed in group { all.append(claimed) }
            return all
        }
        let all = claims.flatMap { $0 }
        #expect(all.count == 120, "claimed \(all.count) times for 120 jobs")
        #expect(Set(all).count == 120, "no job is claimed twice")
        #expect(try await nodes[2].claimDue(now: 20, limit: 100, leaseMs: 60_000).isEmpty, "all are leased")
        // After the lease the jobs are due again, once.
        #expect(try await nodes[2].claimDue(now: 60_011, limit: 500, leaseMs: 60_000).count == 120)
        for node in nodes { try await node.close() }
    }

    /// Two nodes queue messages of one conversation for one device at once: they collapse into
    /// one job listing every message, and removing the target removes its jobs.
    @Test func concurrentEnqueuesOfOneConversationCollapse() async throws {
        let url = try freshPostgresURL()
        let nodes = [try await openPostgres(url), try await openPostgres(url)]
        _ = try await nodes[0].registerTarget(Self.target("t", user: "bob"), maxPerUser: 5)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (index, node) in nodes.enumerated() {
                group.addTask {
                    for n in 0..<10 {
                        let id = UInt64(index * 100 + n + 1)
                        try await node.enqueue([Self.item("t", user: "bob", key: "u:alice|bob", id: id, due: 100)], collapseMs: 5000, maxListed: 100)
                    }
                }
            }
            try await group.waitForAll()
        }
        #expect(try await nodes[0].queuedCount() == 1)
        let job = try #require(try await nodes[1].claimDue(now: 100, limit: 10, leaseMs: 1000).first)
        #expect(job.count == 20)
        let listed = try JSONParser.parse(job.messages).arrayValue ?? []
        #expect(listed.count == 20)
        #expect(job.maxMessageID == 110)
        // An item for a target that is gone is skipped.
        #expect(try await nodes[0].removeTarget(id: "t", user: "bob"))
        #expect(try await nodes[0].queuedCount() == 0)
        try await nodes[1].enqueue([Self.item("t", user: "bob", key: "u:alice|bob", id: 500)], collapseMs: 0, maxListed: 10)
        #expect(try await nodes[1].queuedCount() == 0)
        for node in nodes { try await node.close() }
    }

    /// Two nodes register for one user at once: `maxPerUser` holds across nodes.
    @Test func maxPerUserHoldsAcrossNodes() async throws {
        let url = try freshPostgresURL()
        let nodes = [try await openPostgres(url), try await openPostgres(url)]
        let created = try await withThrowingTaskGroup(of: Bool.self) { group in
            for n in 0..<8 {
                group.addTask {
                    do {
                        return try await nodes[n % 2].registerTarget(Self.target("t\(n)", user: "bob"), maxPerUser: 3).created
                    } catch let error as GatewayError where error.code == .conflict {
                        return false
                    }
                }
            }
            var count = 0
            for try await made in group where made { count += 1 }
            return count
        }
        #expect(created == 3)
        #expect(try await nodes[1].targets(of: "bob").count == 3)
        for node in nodes { try await node.close() }
    }
}
