import GatewayCore
import GatewayTesting
import StagePersist
import Testing

@Suite("persist: the durability role and the body bound", .timeLimit(.minutes(1)))
struct PersistStageTests {
    let harness = StageHarness()

    @Test func asksForTheDurableWrite() async throws {
        let stage = try harness.build(PersistStage.factory)
        var envelope = harness.send("hello")
        #expect(!envelope.persist)
        #expect(try await harness.run(stage, &envelope).isContinue)
        #expect(envelope.persist)
    }

    @Test func refusesABodyOverMaxBodyBytes() async throws {
        let stage = try harness.build(PersistStage.factory, settings: #"{"max_body_bytes": 10}"#)
        var small = harness.send("12345678")  // 10 bytes as JSON
        #expect(try await harness.run(stage, &small).isContinue)
        var large = harness.send("123456789")
        let error = try #require(try await harness.run(stage, &large).rejection)
        #expect(error.code == .tooLarge)
        #expect(!large.persist, "a refused message is not marked for the store")
    }

    @Test func declaresItsRoleAndItsPlace() {
        #expect(PersistStage.factory.provides == [.durability])
        #expect(PersistStage.factory.ordering == StageOrdering(after: [.messageIDs], requires: [.recipients]))
    }

    @Test func refusesABadSetting() {
        let error = #expect(throws: (any Error).self) { try harness.build(PersistStage.factory, settings: #"{"max_body_bytes": 0}"#) }
        #expect("\(error.map { "\($0)" } ?? "")".contains("settings.max_body_bytes: must be 1...16777216 (was 0)"))
    }
}
