import GatewayCore
import GatewayTesting
import StageID
import Testing

@Suite("Snowflake ids")
struct SnowflakeTests {
    @Test func layoutAndTimestamp() {
        let clock = TestClock(millis: 1_767_225_600_123)
        let generator = SnowflakeGenerator(workerID: 5, epochMillis: IDSettings.defaultEpoch, clock: clock)
        let id = generator.next()
        #expect((id >> 12) & 0x3FF == 5)
        #expect(generator.timestamp(of: id) == 1_767_225_600_123)
    }

    @Test func moreThan4096InOneMillisecondStayUniqueAndIncreasing() {
        let clock = TestClock()
        let generator = SnowflakeGenerator(workerID: 1, epochMillis: IDSettings.defaultEpoch, clock: clock)
        var last: UInt64 = 0
        var seen = Set<UInt64>()
        for _ in 0..<10_000 {
            let id = generator.next()
            #expect(id > last)
            last = id
            seen.insert(id)
        }
        #expect(seen.count == 10_000)
    }

    @Test func theClockSteppingBackNeverReusesAnId() {
        let clock = TestClock()
        let generator = SnowflakeGenerator(workerID: 1, epochMillis: IDSettings.defaultEpoch, clock: clock)
        let before = (0..<100).map { _ in generator.next() }
        clock.advance(by: -60_000)
        let after = (0..<100).map { _ in generator.next() }
        #expect(after.first! > before.last!)
        #expect(Set(before + after).count == 200)
    }

    @Test func aRestartWithTheClockSetBackResumesAfterTheStoredMaximum() {
        let clock = TestClock()
        let first = SnowflakeGenerator(workerID: 1, epochMillis: IDSettings.defaultEpoch, clock: clock)
        let stored = (0..<10).map { _ in first.next() }.max()!
        clock.advance(by: -3_600_000)
        let restarted = SnowflakeGenerator(workerID: 1, epochMillis: IDSettings.defaultEpoch, clock: clock)
        restarted.resume(after: stored)
        #expect(restarted.next() > stored)
    }

    /// A floor stamped by another node in the same millisecond: whatever its worker id, the
    /// next id is above it (the committer re-stamps a batch refused for inbox order so).
    @Test func anotherWorkersFloorInTheSameMillisecondIsExceeded() {
        let clock = TestClock(millis: 1_767_225_600_000)
        let node = SnowflakeGenerator(workerID: 3, epochMillis: IDSettings.defaultEpoch, clock: clock)
        for otherWorker in [0, 2, 3, 4, 1023] {
            let other = SnowflakeGenerator(workerID: otherWorker, epochMillis: IDSettings.defaultEpoch, clock: clock)
            let floor = (0..<5).map { _ in other.next() }.max()!
            node.resume(after: floor)
            let id = node.next()
            #expect(id > floor, "worker \(otherWorker)")
            #expect(node.timestamp(of: id) - node.timestamp(of: floor) <= 1)
        }
    }

    @Test func theStageStampsFromTheStoreHighWaterMark() async throws {
        let store = InMemoryStore()
        let clock = TestClock()
        let high: UInt64 = (UInt64(clock.nowMillis() - IDSettings.defaultEpoch + 1000) << 22)
        _ = try await store.commit([
            PendingMessage(message: StoredMessage(id: high, from: "a", to: .user("b"), timestamp: 0, clientMsgID: "x", body: [0x31]), inboxes: ["a"])
        ])
        let stage = IDStage(settings: IDSettings(), workerID: 1, clock: clock)
        var envelope = Envelope(
            kind: .send, sender: Principal(user: "a", device: "d", session: "s", transport: .websocket), ref: nil, frame: JSONObject(), timestamp: 0)
        let context = StageContext(name: "id", logger: .init(label: "t"), clock: clock, stores: Stores(store), presence: Nobody())
        _ = try await stage.process(&envelope, context: context)
        #expect(try #require(envelope.id) > high)
    }

    struct Nobody: PresenceQuery {
        func isOnline(_ user: String) -> Bool { false }
    }
}
