import Foundation
import GatewayCore
import GatewayTesting
import Logging
import NIOCore
import Testing

@testable import PostgresStore

/// The cluster bus's wire records and its map of who is live on other nodes, without a second
/// node: records are built and fed to `receive` directly. (The end-to-end tests,
/// `ClusterBusTests` and `ClusterFailoverTests`, run them between real nodes.)
@Suite("Cluster bus records", .timeLimit(.minutes(1)))
struct ClusterBusRecordTests {
    static func frame(_ text: String) -> ByteBuffer {
        var buffer = ServerFrame.emptyFrame(capacity: text.utf8.count)
        buffer.writeString(text)
        return buffer
    }

    @Test func notificationsStayUnderTheLimitAndKeepEachNodesOrder() {
        var notifications = PostgresClusterBus.Notifications()
        var sent: [Int32: [UInt8]] = [:]
        for n in 0..<60 {
            let worker: Int32 = n % 3 == 0 ? 5 : 3
            let record = PostgresClusterBus.record(
                ClusterDelivery(user: "u\(n)", frame: Self.frame("{\"type\":\"typing\",\"n\":\(n),\"pad\":\"\(String(repeating: "x", count: 400))\"}")))
            sent[worker, default: []] += record
            notifications.append(record, to: worker)
        }
        let (channels, payloads) = notifications.finish()
        #expect(channels.count == payloads.count)
        #expect(payloads.allSatisfy { $0.utf8.count <= PostgresClusterBus.payloadLimit })
        #expect(channels.count > 2, "40 records of ~450 bytes need several notifications")
        for worker: Int32 in [3, 5] {
            let joined = zip(channels, payloads).filter { $0.0 == "chatgate_w\(worker)" }.flatMap { Array($0.1.utf8) }
            #expect(joined == sent[worker], "worker \(worker)'s records arrive whole and in order")
        }
    }

    @Test func aFrameTooLargeForANotificationTravelsAsItsSeq() {
        let big = Self.frame("{\"type\":\"message\",\"body\":\"\(String(repeating: "y", count: 8000))\"}")
        #expect(String(decoding: PostgresClusterBus.record(ClusterDelivery(user: "bob", frame: big, seq: 42)), as: UTF8.self) == "l\tbob\t42\n")
        #expect(PostgresClusterBus.record(ClusterDelivery(user: "bob", frame: big)).isEmpty, "no seq to load it by: dropped")
        let small = PostgresClusterBus.record(ClusterDelivery(user: "bob", frame: Self.frame("{\"a\":1}"), seq: 1))
        #expect(String(decoding: small, as: UTF8.self) == "d\tbob\t7\t{\"a\":1}\n")
    }

    /// Presence records build the map; a node's reset drops its users; unknown or truncated
    /// records are ignored. Also measures what the map costs per user live elsewhere
    /// (docs/SCALING.md quotes it; in scripts/test.sh's isolated phase, so no other test allocates meanwhile).
    @Test func presenceRecordsBuildTheMapAndTheMapsCostIsMeasured() async throws {
        let store = try await openPostgres(try freshPostgresURL())
        let lease = NodeLease(
            store: store, node: .init(nodeID: "me", wsURL: "ws://me/v1/ws", longpollURL: "http://me/v1/lp", maxSessions: 10), leaseMs: 10_000,
            clock: TestClock(), logger: Logger(label: "test"))
        let bus = PostgresClusterBus(store: store, lease: lease, clock: TestClock(), logger: Logger(label: "test"), publicURL: nil, tls: false)
        await bus.receive("p\t3\t+\talice\np\t4\t+\talice\np\t4\t+\tbob\n")
        #expect(bus.isOnlineElsewhere("alice") && bus.isOnlineElsewhere("bob"))
        await bus.receive("r\t4\n")
        #expect(bus.isOnlineElsewhere("alice"), "still on node 3")
        #expect(!bus.isOnlineElsewhere("bob"))
        await bus.receive("p\t3\t-\talice\n")
        #expect(!bus.isOnlineElsewhere("alice"))
        await bus.receive("x\tjunk\np\t3\t+\tcarol\n")
        #expect(!bus.isOnlineElsewhere("carol"), "an unknown record ends the notification")
        await bus.receive("p\t3\t+")
        await bus.receive("d\tbob\t999\t{}")  // a length past the end: ignored

        // 50,000 users live on other nodes, 16-byte ids like real ones.
        let users = 50_000
        let before = Self.residentBytes()
        var batch = ""
        for n in 0..<users {
            batch += "p\t\(n % 8)\t+\tuser-\(String(format: "%011d", n))\n"
            if batch.utf8.count > 7000 {
                await bus.receive(batch)
                batch = ""
            }
        }
        await bus.receive(batch)
        let perUser = (Self.residentBytes() - before) / users
        #expect(bus.isOnlineElsewhere("user-\(String(format: "%011d", users - 1))"))
        print("cluster bus map: about \(perUser) bytes per user live elsewhere (\(users) users)")
        #expect(perUser < 1000, "the map costs \(perUser) bytes per user")
        try await store.close()
    }

    static func residentBytes() -> Int {
        guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
        let fields = text.split(separator: " ")
        return (fields.count > 1 ? Int(fields[1]) ?? 0 : 0) * 4096
    }
}
