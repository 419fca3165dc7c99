import Foundation
import GatewayCore
import GatewayTesting
import Logging
import Testing

@testable import PostgresStore

/// The table of long-poll sessions (`PostgresClusterBus+LongPoll.swift`) with two nodes on one
/// database and time stepped through a `TestClock`: a session is relayed to its live owner,
/// orphaned once the owner's lease ran out, claimed by one node only, and its old owner (back
/// after a lapse) learns it lost it; rows of ended and expired sessions go away.
@Suite("Long-poll session table", .timeLimit(.minutes(2)))
struct LongPollDirectoryTests {
    static func bus(_ store: PostgresStore, _ node: String, clock: TestClock) -> PostgresClusterBus {
        let lease = NodeLeaseTests.lease(store, node, clock: clock, leaseMs: 3_000)
        return PostgresClusterBus(store: store, lease: lease, clock: clock, logger: Logger(label: "test.lp"), publicURL: nil, tls: false)
    }

    @Test func ownerRelayOrphanClaimAndLoss() async throws {
        let store = try await openPostgres(try freshPostgresURL())
        let clock = TestClock()
        let a = Self.bus(store, "a", clock: clock)
        let b = Self.bus(store, "b", clock: clock)
        try await a.lease.acquire(worker: nil)
        try await b.lease.acquire(worker: nil)
        let ttl: Int64 = 30_000
        let record = LongPollRecord(session: "a-1-1", user: "bob", device: "web", ackedSeq: 4, expiresAt: clock.nowMillis() + ttl)
        #expect(try await a.save([record], ended: []).isEmpty)

        // Its owner is live: the other node relays; the owner itself has no other node to ask.
        #expect(try await b.locate(session: "a-1-1") == .remote("http://a:8080/v1/lp"))
        #expect(try await a.locate(session: "a-1-1") == .unknown)
        #expect(try await b.locate(session: "nope") == .unknown)

        // A checkpoint keeps the highest confirmed seq.
        var confirmed = record
        confirmed.ackedSeq = 9
        #expect(try await a.save([confirmed], ended: []).isEmpty)
        confirmed.ackedSeq = 7
        #expect(try await a.save([confirmed], ended: []).isEmpty)

        // A stops renewing; B renews. Past A's lease the session is orphaned.
        clock.advance(by: 2_000)
        #expect(try await b.lease.renew())
        clock.advance(by: 1_500)
        guard case .orphaned(let orphan) = try await b.locate(session: "a-1-1") else {
            Issue.record("not orphaned after A's lease ran out")
            try await store.close()
            return
        }
        #expect(orphan.user == "bob" && orphan.device == "web" && orphan.ackedSeq == 9)
        #expect(try await b.claim(orphan, expiresAt: clock.nowMillis() + ttl))
        #expect(try await b.claim(orphan, expiresAt: clock.nowMillis() + ttl) == false, "claimed once")
        #expect(try await b.locate(session: "a-1-1") == .unknown, "B owns it now")

        // A comes back (its worker id still free): its checkpoint learns the session is B's,
        // and its ended list cannot delete B's row.
        #expect(try await a.lease.renew())
        #expect(try await a.locate(session: "a-1-1") == .remote("http://b:8080/v1/lp"))
        #expect(try await a.save([confirmed], ended: []) == ["a-1-1"])
        #expect(try await a.save([], ended: ["a-1-1"]).isEmpty)
        #expect(try await a.locate(session: "a-1-1") == .remote("http://b:8080/v1/lp"))

        // B ends it: gone everywhere.
        #expect(try await b.save([], ended: ["a-1-1"]).isEmpty)
        #expect(try await a.locate(session: "a-1-1") == .unknown)

        // An orphan past its expiry (session_ttl_ms + lease_ms after its last checkpoint) is
        // gone too, and the next checkpoint of any node deletes its row.
        let old = LongPollRecord(session: "b-1-2", user: "carol", device: "d", ackedSeq: 0, expiresAt: clock.nowMillis() + ttl)
        #expect(try await b.save([old], ended: []).isEmpty)
        clock.advance(by: ttl + 3_000 + 1)
        #expect(try await a.lease.renew())
        #expect(try await a.locate(session: "b-1-2") == .unknown)
        #expect(try await a.save([], ended: []).isEmpty)
        let rows = try await store.access {
            var count = 0
            for try await _ in try await store.client.query("SELECT 1 FROM longpoll_sessions WHERE session_id = 'b-1-2'", logger: Logger(label: "t")) {
                count += 1
            }
            return count
        }
        #expect(rows == 0)
        try await store.close()
    }
}
