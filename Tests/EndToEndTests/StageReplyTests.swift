import Foundation
import GatewayConfig
import GatewayCore
import GatewayTesting
import Logging
import NIOCore
import Testing

@testable import chatgate

/// `.reply` from a stage answers the sender for every frame type a stage can take, not only
/// `send`: the sender gets the stage's frame with its `ref`, and the frame goes no further.
@Suite("Stage replies for typing, read, presence and delivered", .timeLimit(.minutes(1)))
struct StageReplyTests {
    /// Answers every frame it is handed with a `notice` naming the frame's type.
    struct AnsweringStage: Stage {
        func process(_ envelope: inout Envelope, context: StageContext) async throws -> StageOutcome {
            .reply(["type": "notice", "for": .string(envelope.kind.rawValue)])
        }
    }

    /// Records that a later stage saw a frame (it must not, after a reply).
    struct RecordingStage: Stage {
        let seen: LogCapture
        func process(_ envelope: inout Envelope, context: StageContext) async throws -> StageOutcome {
            seen.append(envelope.kind.rawValue)
            return .continue
        }
    }

    @Test(arguments: [
        (#"{"type":"typing","to":{"user":"bob"},"ref":"r1"}"#, "typing"),
        (#"{"type":"read","with":{"user":"bob"},"up_to":"5","ref":"r1"}"#, "read"),
        (#"{"type":"presence.subscribe","users":["bob"],"ref":"r1"}"#, "presence.subscribe"),
        (#"{"type":"delivered","seq":1,"ref":"r1"}"#, "delivered"),
    ])
    func aReplyAnswersTheSenderAndEndsTheFrame(frame: String, kind: String) async throws {
        let seen = LogCapture()
        let registry = try StageRegistry(
            BuiltInStages.factories + [
                StageFactory(kind: "test.answer", settings: NoSettings.self) { _, _ in AnsweringStage() },
                StageFactory(kind: "test.record", settings: NoSettings.self) { _, _ in RecordingStage(seen: seen) },
            ])
        let yaml = TestGateway.yaml(
            directory: FileManager.default.temporaryDirectory, extra: "",
            pipeline: """
                  - stage: auth
                    settings: { hs256_secret: "\(TestGateway.secret)" }
                  - stage: test.answer
                    on: [\(kind)]
                  - stage: test.record
                    on: [send, typing, read, presence.subscribe, delivered]
                  - stage: id
                  - stage: persist
                  - stage: fanout
                """)
        let configuration = try ConfigLoader.load(text: yaml, file: "config.yaml", environment: [:])
        let logger = Logger(label: "reply", factory: { _ in SwiftLogNoOpLogHandler() })
        let store = InMemoryStore()
        let stores = Stores(store)
        let hub = SessionHub(maxSessionsPerUser: 8)
        let pipeline = try Pipeline.build(
            configuration.pipeline, registry: registry, logger: logger, clock: TestClock(), stores: stores, presence: hub, node: configuration.node)
        let gateway = Gateway(configuration: configuration, stores: stores, hub: hub, pipeline: pipeline, clock: TestClock(), logger: logger)
        let principal = Principal(user: "alice", device: "d1", session: "s1", transport: .http)

        var replies: [JSONObject] = []
        let parsed = try ClientFrame.parse(ByteBuffer(string: frame)).get()
        let error = await gateway.handle(parsed, principal: principal) { bytes in
            if let object = try? JSONParser.parse(Array(bytes.readableBytesView)).objectValue { replies.append(object) }
        }
        #expect(error == nil)
        #expect(replies.count == 1)
        #expect(replies.first?["type"] == "notice")
        #expect(replies.first?["for"] == .string(kind))
        #expect(replies.first?["ref"] == "r1")
        #expect(seen.lines.isEmpty, "a later stage saw the frame: \(seen.lines)")
        // The frame did nothing else: a read moved no read position.
        #expect(try await store.readPositions(conversation: Address.user("bob").conversationKey(sender: "alice")).isEmpty)
        await gateway.drain()
    }
}
