import Foundation
import GatewayCore
import GatewayTesting
import Testing

@testable import chatgate

/// Nodes on one PostgreSQL database, booted with the real wiring: each leases its own
/// Snowflake worker id at start, a fixed id held by another live node refuses the start, and a
/// cleanly stopped node gives its id back at once.
@Suite("Cluster node leases at start")
struct ClusterLeaseTests {
    /// timeout_ms 30000: see openPostgres in PostgresStoreTests (the default 5 s on a loaded 2-core machine).
    static func store(_ url: String) -> String { "store: { kind: postgres, url: \"\(url)\", pool_size: 4, timeout_ms: 30000 }" }

    @Test func nodesLeaseDistinctWorkerIDsAndAFixedTakenOneRefusesTheStart() async throws {
        guard let server = try PostgresTestServer.shared() else {
            try Test.cancel(Comment(rawValue: PostgresTestServer.unavailableReason))
        }
        let url = try server.createDatabase()
        let a = try await TestGateway.start(extra: "node: { id: node-a, worker_id: auto }\n" + Self.store(url))
        let b = try await TestGateway.start(extra: "node: { id: node-b, worker_id: auto }\n" + Self.store(url))
        let workerA = try #require(a.bootstrap.lease?.workerID)
        let workerB = try #require(b.bootstrap.lease?.workerID)
        #expect(workerA != workerB)
        #expect(a.bootstrap.configuration.node.workerID == workerA, "the id stage stamps with the leased worker id")

        // A message sent on A is acked (the lease is valid) and its id carries A's worker id.
        let (alice, _) = try await a.connect("alice")
        alice.send(sendFrame(to: .user("bob"), body: "hi", id: "c1", ref: "r1"))
        let ack = try await alice.nextFrame()
        #expect(ack["type"]?.stringValue == "ack")
        let id = try #require(ack["id"]?.stringValue.flatMap(UInt64.init))
        #expect(Int((id >> 12) & 0x3ff) == workerA)

        let error = await #expect(throws: GatewayError.self) {
            _ = try await TestGateway.start(extra: "node: { id: node-c, worker_id: \(workerA) }\n" + Self.store(url))
        }
        #expect(error?.code == .conflict)

        // B stops cleanly: its worker id is free at once.
        alice.close()
        await b.stop()
        let c = try await TestGateway.start(extra: "node: { id: node-c, worker_id: \(workerB) }\n" + Self.store(url))
        #expect(c.bootstrap.lease?.workerID == workerB)
        await c.stop()
        await a.stop()
    }
}
