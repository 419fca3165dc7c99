import GatewayCore
import GatewayTesting
@testable import StagePersist
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

    /// The stage counts the body's JSON instead of serializing it: the count is the length of
    /// the bytes the gateway stores, for every kind of value, escapes and non-ASCII included.
    @Test(arguments: [
        #"{"a":1,"b":[true,false,null],"c":{"d":"x\"y\\z\n\t\u0001é😀"},"e":-1.5e3}"#,
        #"[]"#, #"{}"#, #"[[],{},[1,[2,[3]]]]"#, #""\b\f\r\u001f""#, #"12345678901234567890"#, #"null"#,
        #"{"":"","k\"":["\u0000",0.25]}"#,
    ])
    func countsTheBytesTheGatewayStores(text: String) throws {
        let value = try JSONParser.parse(text)
        #expect(PersistStage.encodedSize(value, limit: Int.max) == value.jsonBytes.count)
    }

    @Test func refusesAnObjectBodyOneByteOverTheBound() async throws {
        let body = try JSONParser.parse(#"{"text":"a\"b","n":[1,2]}"#)
        let size = body.jsonBytes.count
        let exact = try harness.build(PersistStage.factory, settings: #"{"max_body_bytes": \#(size)}"#)
        var fits = harness.send(body)
        #expect(try await harness.run(exact, &fits).isContinue)
        let tight = try harness.build(PersistStage.factory, settings: #"{"max_body_bytes": \#(size - 1)}"#)
        var over = harness.send(body)
        #expect(try await harness.run(tight, &over).rejection?.code == .tooLarge)
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
