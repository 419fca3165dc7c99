import Foundation
import GatewayCore
import GatewayTesting
import Logging
import Testing
@testable import PostgresStore

/// Node registration and Snowflake worker id leases, time stepped through a `TestClock`
/// (the lease lives in PostgreSQL, its deadlines in the clock's milliseconds).
@Suite("Node leases")
struct NodeLeaseTests {
    static func lease(_ store: PostgresStore, _ node: String, clock: TestClock, leaseMs: Int64 = 10_000, sessions: Int = 0) -> NodeLease {
        NodeLease(
            store: store,
            node: .init(nodeID: node, wsURL: "ws://\(node):8080/v1/ws", longpollURL: "http://\(node):8080/v1/lp", maxSessions: 100),
            leaseMs: leaseMs, clock: clock, logger: Logger(label: "test.lease"), sessions: { sessions })
    }

    @Test func autoWorkerIDsAreDistinctAndAFixedOneMustBeFree() async throws {
        let store = try await openPostgres(try freshPostgresURL())
        let clock = TestClock()
        let a = Self.lease(store, "a", clock: clock)
        let b = Self.lease(store, "b", clock: clock)
        let c = Self.lease(store, "c", clock: clock)
        #expect(try await a.acquire(worker: nil) == 0)
        #expect(try await b.acquire(worker: nil) == 1)
        #expect(try await c.acquire(worker: 7) == 7)
        let d = Self.lease(store, "d", clock: clock)
        let error = await #expect(throws: GatewayError.self) { try await d.acquire(worker: 7) }
        #expect(error?.code == .conflict)
        #expect(error?.message.contains("'c'") == true)
        #expect(try await d.acquire(worker: nil) == 2)
        #expect(try await Set(a.liveNodes().map(\.workerID)) == [0, 1, 2, 7])
        try await store.close()
    }

    /// Node A stops renewing (it died, or lost PostgreSQL): A refuses sends before its lease
    /// ends, and only after it ends may B take A's worker id.
    @Test func anExpiredLeaseStopsSendsBeforeItsWorkerIDIsReused() async throws {
        let store = try await openPostgres(try freshPostgresURL())
        let clock = TestClock()
        let a = Self.lease(store, "a", clock: clock, leaseMs: 10_000)
        #expect(try await a.acquire(worker: 5) == 5)
        #expect(a.isValid)
        let guarded = LeaseGuardedMessageStore(store: store, lease: a)
        #expect(try await guarded.commit([direct(1, from: "alice", to: "bob")]).first?.storedSeqs != nil)

        clock.advance(by: 7_000)
        #expect(try await a.renew())  // lease now until t0 + 17 s
        clock.advance(by: 9_000)  // t0 + 16 s: within the lease, but inside the margin
        #expect(!a.isValid)
        let refused = await #expect(throws: GatewayError.self) { _ = try await guarded.commit([direct(2, from: "alice", to: "bob")]) }
        #expect(refused?.code == .unavailable)

        let b = Self.lease(store, "b", clock: clock)
        await #expect(throws: GatewayError.self, "A's lease still lives") { try await b.acquire(worker: 5) }
        #expect(try await b.acquire(worker: nil) != 5)

        clock.advance(by: 1_001)  // past A's lease_until
        let c = Self.lease(store, "c", clock: clock)
        #expect(try await c.acquire(worker: 5) == 5)
        // A comes back: its renewal finds worker 5 taken, and it stays refused for good.
        #expect(try await a.renew() == false)
        #expect(!a.isValid)
        #expect(try await c.liveNodes().first { $0.workerID == 5 }?.id == "c")
        try await store.close()
    }

    /// Discovery's view: live, not draining nodes, least loaded first; a released lease frees
    /// its worker id at once.
    @Test func liveNodesAreOrderedByLoadAndReleaseFreesTheWorkerID() async throws {
        let store = try await openPostgres(try freshPostgresURL())
        let clock = TestClock()
        let busy = Self.lease(store, "busy", clock: clock, sessions: 80)
        let idle = Self.lease(store, "idle", clock: clock, sessions: 3)
        let drained = Self.lease(store, "drained", clock: clock, sessions: 0)
        try await busy.acquire(worker: nil)
        try await idle.acquire(worker: nil)
        try await drained.acquire(worker: nil)
        try await drained.setDraining()
        let nodes = try await busy.liveNodes()
        #expect(nodes.map(\.id) == ["idle", "busy"])
        #expect(nodes.first?.wsURL == "ws://idle:8080/v1/ws")
        #expect(nodes.first.map { abs($0.load - 0.03) < 1e-9 } == true)

        let worker = try #require(busy.workerID)
        try await busy.release()
        #expect(!busy.isValid)
        let next = Self.lease(store, "next", clock: clock)
        #expect(try await next.acquire(worker: worker) == worker)
        try await store.close()
    }
}
