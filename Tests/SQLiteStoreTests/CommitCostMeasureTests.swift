import Foundation
import GatewayCore
import Testing
@testable import SQLiteStore

/// CPU per message of `EmbeddedStore.commit` alone, in process, for relay-shaped batches (100
/// pairs, 1:1) and fanout-shaped ones (10 groups of 20), at a large and a small batch size.
/// Runs only with `CHATGATE_MEASURE=1`; figures go to standard error and are not asserted
/// (a debug build overstates the Swift side), only the end state is.
@Suite("Commit cost measurement", .serialized, .timeLimit(.minutes(2)), .enabled(if: ProcessInfo.processInfo.environment["CHATGATE_MEASURE"] == "1"))
struct CommitCostMeasureTests {
    static func report(_ line: String) {
        FileHandle.standardError.write(Data(("measure: " + line + "\n").utf8))
    }

    /// Process CPU time (every thread, the checkpointer included), in seconds.
    static func cpuSeconds() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
    }

    @Test(arguments: [450, 20])
    func relay(batchSize: Int) async throws {
        try await withTemporaryDirectory { directory in
            let store = try EmbeddedStore(path: directory + "/chat.db", durability: .full)
            let total = 30_000
            var id: UInt64 = 0
            func batch() -> [PendingMessage] {
                (0..<batchSize).map { _ in
                    id += 1
                    let pair = Int(id % 100)
                    let (from, to) = id % 2 == 0 ? ("s\(pair)", "r\(pair)") : ("r\(pair)", "s\(pair)")
                    return direct(id, from: from, to: to, clientMsgID: "b\(id)-\(1_700_000_000_000_000 + id * 7919)")
                }
            }
            for _ in 0..<(2_000 / batchSize) { _ = try await store.commit(batch()) }  // warm-up
            let start = Self.cpuSeconds()
            let clock = ContinuousClock()
            let elapsed = try await clock.measure {
                for _ in 0..<(total / batchSize) { _ = try await store.commit(batch()) }
            }
            let cpu = Self.cpuSeconds() - start
            let measured = Double(total / batchSize * batchSize)
            Self.report(String(format: "relay, batches of %d: %.1f µs CPU and %.1f µs wall per message", batchSize, cpu / measured * 1e6,
                               Double(elapsed.components.seconds) * 1e6 / measured + Double(elapsed.components.attoseconds) / 1e12 / measured))
            #expect(try await store.inboxHead(user: "s1") > 0)
            try await store.close()
        }
    }

    @Test(arguments: [100, 10])
    func fanout(batchSize: Int) async throws {
        try await withTemporaryDirectory { directory in
            let store = try EmbeddedStore(path: directory + "/chat.db", durability: .full)
            for group in 0..<10 {
                let members = (0..<20).map { "g\(group)m\($0)" }
                try await store.createGroup(GroupInfo(id: "grp\(group)", name: "g", owner: members[0], members: members, createdAt: 1))
            }
            let total = 10_000
            var id: UInt64 = 0
            func batch() -> [PendingMessage] {
                (0..<batchSize).map { _ in
                    id += 1
                    let group = Int(id % 10)
                    let members = (0..<20).map { "g\(group)m\($0)" }
                    return groupMessage(id, from: members[Int(id / 10 % 2)], group: "grp\(group)", members: members, readFanout: false)
                }
            }
            for _ in 0..<(1_000 / batchSize) { _ = try await store.commit(batch()) }
            let start = Self.cpuSeconds()
            for _ in 0..<(total / batchSize) { _ = try await store.commit(batch()) }
            let cpu = Self.cpuSeconds() - start
            let measured = Double(total / batchSize * batchSize)
            Self.report(String(format: "fanout 10 × 20, batches of %d: %.1f µs CPU per message (%.2f per delivery)", batchSize, cpu / measured * 1e6,
                               cpu / measured / 20 * 1e6))
            #expect(try await store.inboxHead(user: "g0m5") > 0)
            try await store.close()
        }
    }
}
