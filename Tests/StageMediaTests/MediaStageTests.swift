import Foundation
import GatewayCore
import GatewayTesting
import Logging
import MediaStore
import NIOCore
import StageMedia
import Testing

/// The `media` stage through the harness, on a real media service (files in a temporary
/// directory, records in the harness's in-memory store).
@Suite("media stage")
struct MediaStageTests {
    struct Setup {
        let harness = StageHarness()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("stage-media-\(UUID().uuidString)")
        let service: MediaService
        let context: StageContext

        init(inlineMaxBytes: Int = 1024) throws {
            var settings = MediaSettings()
            settings.dir = directory.path
            settings.inlineMaxBytes = inlineMaxBytes
            service = try MediaService(
                settings: settings, blobs: try FileBlobStore(directory: directory.path), metadata: harness.store, groups: harness.store,
                clock: harness.clock, logger: Logger(label: "stage-media-test"))
            var stores = harness.stores
            stores.media = service
            context = StageContext(name: "media", logger: harness.logger, clock: harness.clock, stores: stores, presence: harness.presence)
        }

        func run(_ attachments: [JSONValue], from user: String = "alice", to: Address = .user("bob")) async throws -> (StageOutcome, Envelope) {
            var envelope = harness.send("hi", from: user, to: to)
            envelope.attachments = attachments
            let outcome = try await MediaStage().process(&envelope, context: context)
            return (outcome, envelope)
        }
    }

    static func inline(_ text: String, type: String = "text/plain", name: String? = nil) -> JSONValue {
        var object: JSONObject = ["content_type": .string(type), "data": .string(Data(text.utf8).base64EncodedString())]
        if let name { object["name"] = .string(name) }
        return .object(object)
    }

    @Test("inline data becomes a stored media_id the recipient may read; references to own uploads pass")
    func inlineAndReference() async throws {
        let setup = try Setup()
        defer { try? FileManager.default.removeItem(at: setup.directory) }
        let upload = try await setup.service.store(
            MediaByteStream(ByteBuffer(string: "uploaded before")), declaredLength: nil, contentType: "text/plain", name: "u.txt", uploader: "alice")
        let (outcome, envelope) = try await setup.run([Self.inline("hello", name: "hi.txt"), ["media_id": .string(upload.id)]])
        #expect(outcome.isContinue)
        let items = try #require(envelope.attachments)
        #expect(items.count == 2)
        let id = try #require(items[0]["media_id"]?.stringValue)
        #expect(items[0]["size"]?.int64Value == 5)
        #expect(items[0]["name"]?.stringValue == "hi.txt")
        #expect(items[0]["url"]?.stringValue == "/v1/media/\(id)")
        #expect(items[0]["data"] == nil)
        #expect(items[1]["media_id"]?.stringValue == upload.id)
        let record = try #require(try await setup.service.record(id))
        try await setup.service.authorize(record, user: "bob")
        try await setup.service.authorize(upload, user: "bob")
        await #expect(throws: GatewayError.self) { try await setup.service.authorize(record, user: "carol") }
    }

    @Test("refusals: too many, not an object, bad base64, too large, unknown id, someone else's upload")
    func refusals() async throws {
        let setup = try Setup(inlineMaxBytes: 16)
        defer { try? FileManager.default.removeItem(at: setup.directory) }
        let bobs = try await setup.service.store(
            MediaByteStream(ByteBuffer(string: "bob's")), declaredLength: nil, contentType: "text/plain", name: nil, uploader: "bob")
        let cases: [([JSONValue], GatewayError.Code)] = [
            (Array(repeating: Self.inline("x"), count: 11), .badFrame),
            (["just a string"], .badFrame),
            ([["content_type": "text/plain", "data": "!!not base64!!"]], .badFrame),
            ([Self.inline(String(repeating: "y", count: 17))], .tooLarge),
            ([["media_id": "../../etc/passwd"]], .badFrame),
            ([["media_id": .string("m" + String(repeating: "9", count: 32))]], .notFound),
            ([["media_id": .string(bobs.id)]], .forbidden),
            ([["content_type": "not a type", "data": .string(Data("x".utf8).base64EncodedString())]], .badFrame),
        ]
        for (attachments, code) in cases {
            let (outcome, _) = try await setup.run(attachments)
            #expect(outcome.rejection?.code == code, "\(attachments.first.map { "\($0)" } ?? "")")
        }
        #expect(try await setup.service.statistics().uploads == 1)
    }
}
