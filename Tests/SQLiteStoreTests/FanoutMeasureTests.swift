import Foundation
import GatewayCore
import Testing
@testable import SQLiteStore

/// Store-level cost of write fanout against fanout-on-read for a 100-member group. Runs only
/// with `CHATGATE_MEASURE=1` (figures from a debug build overstate the Swift side); the figures
/// go to standard error and are not asserted, only the end state is.
@Suite("Fanout measurement", .serialized, .enabled(if: ProcessInfo.processInfo.environment["CHATGATE_MEASURE"] == "1"))
struct FanoutMeasureTests {
    static let memberCount = 100
    static let messageCount = 4000
    static let batchSize = 64

    static func report(_ line: String) {
        FileHandle.standardError.write(Data(("measure: " + line + "\n").utf8))
    }

    static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }

    @Test(arguments: [StoreSettings.Durability.full, .relaxed])
    func deliveriesPerSecondToA100MemberGroup(durability: StoreSettings.Durability) async throws {
        let members = (0..<Self.memberCount).map { "m\($0)" }
        for readFanout in [false, true] {
            try await withTemporaryDirectory { directory in
                let store = try EmbeddedStore(path: directory + "/chat.db", durability: durability)
                try await store.createGroup(GroupInfo(id: "g", name: "g", owner: members[0], members: members, createdAt: 1))
                let clock = ContinuousClock()
                let commitTime = try await clock.measure {
                    for start in stride(from: 0, to: Self.messageCount, by: Self.batchSize) {
                        let batch = (start..<min(start + Self.batchSize, Self.messageCount)).map { n in
                            groupMessage(UInt64(n + 1), from: members[n % 3], group: "g", members: members, readFanout: readFanout)
                        }
                        _ = try await store.commit(batch)
                    }
                }
                // Every member reads its inbox once (fanout-on-read materializes here).
                var heads: [Int64] = []
                let readTime = try await clock.measure {
                    for member in members { heads.append(try await store.inboxHead(user: member)) }
                }
                #expect(heads.allSatisfy { $0 == Int64(Self.messageCount) }, "every member has every message once")
                let deliveries = Double(Self.messageCount * Self.memberCount)
                let commit = Self.seconds(commitTime)
                let read = Self.seconds(readTime)
                let figures = String(
                    format: "commit %.0f msg/s (%.3f s), first read of the 100 inboxes %.3f s, %.0f deliveries/s overall",
                    Double(Self.messageCount) / commit, commit, read, deliveries / (commit + read))
                Self.report("\(readFanout ? "fanout-on-read" : "write fanout") \(durability.rawValue): \(figures)")
                let statistics = try await store.statistics()
                #expect(statistics.inboxEntries == Self.messageCount * Self.memberCount)
                try await store.close()
            }
        }
    }
}
