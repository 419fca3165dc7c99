import GatewayCore
import GatewayTesting
import StageFanout
import Testing

@Suite("fanout: the recipients role", .timeLimit(.minutes(1)))
struct FanoutStageTests {
    let harness = StageHarness()

    @Test func aOneToOneMessageGoesToThePeerAndTheSender() async throws {
        let stage = try harness.build(FanoutStage.factory)
        var envelope = harness.send("hi", from: "alice", to: .user("bob"))
        #expect(try await harness.run(stage, &envelope).isContinue)
        #expect(Set(envelope.recipients ?? []) == ["alice", "bob"])
        #expect(envelope.liveOnlyRecipients == nil)
    }

    @Test func aGroupMessageGoesToEveryMember() async throws {
        try await harness.store.createGroup(GroupInfo(id: "g_1", name: "g", owner: "alice", members: ["alice", "bob", "carol"], createdAt: 0))
        let stage = try harness.build(FanoutStage.factory)
        var envelope = harness.send("hi", from: "alice", to: .group("g_1"))
        #expect(try await harness.run(stage, &envelope).isContinue)
        #expect(Set(envelope.recipients ?? []) == ["alice", "bob", "carol"])
    }

    @Test func aGroupAboveTheThresholdIsServedFanoutOnRead() async throws {
        try await harness.store.createGroup(GroupInfo(id: "g_2", name: "g", owner: "alice", members: ["alice", "bob", "carol"], createdAt: 0))
        let stage = try harness.build(FanoutStage.factory, settings: #"{"fanout_on_read_above": 2}"#)
        var envelope = harness.send("hi", from: "alice", to: .group("g_2"))
        #expect(try await harness.run(stage, &envelope).isContinue)
        #expect(envelope.recipients == ["alice"])
        #expect(Set(envelope.liveOnlyRecipients ?? []) == ["bob", "carol"])
    }

    @Test func declaresTheRecipientsRole() {
        #expect(FanoutStage.factory.provides == [.recipients])
        #expect(FanoutStage.factory.ordering == .none)
    }
}
