import Crypto
import Foundation
import GatewayConfig
import GatewayCore
import GatewayTesting
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization
import Testing

@testable import chatgate

/// The extension stages over real sockets: the example word filter, rate limiting with the
/// 1008 close, and a webhook service on a local port.
@Suite("Custom stages end to end: word filter, rate limit, webhook")
struct CustomStageTests {
    static let auth = """
          - stage: auth
            settings: { hs256_secret: "\(TestGateway.secret)", leeway_s: 30 }
        """
    static let store = """
          - stage: id
          - stage: persist
          - stage: fanout
        """

    // MARK: example.wordfilter

    @Test func theWordFilterRewritesAndRejectsAsConfigured() async throws {
        let gateway = try await TestGateway.start(
            pipeline: Self.auth + """

                  - stage: example.wordfilter
                    name: block
                    settings: { words: [forbidden], action: reject }
                  - stage: example.wordfilter
                    name: mask
                    settings: { words: [heck, darn], replacement: "#" }

                """ + Self.store)
        let (alice, _) = try await gateway.connect("alice")
        let (bob, _) = try await gateway.connect("bob")

        alice.send(sendFrame(to: .user("bob"), body: "what the HECK", id: "w1", ref: "r1"))
        #expect(try await alice.nextFrame()["type"] == "ack")
        #expect(try await bob.nextFrame()["body"] == "what the ####")

        alice.send(sendFrame(to: .user("bob"), body: ["text": "darn it", "heck": "keys are not text"], id: "w2", ref: "r2"))
        #expect(try await alice.nextFrame()["type"] == "ack")
        #expect(try await bob.nextFrame()["body"] == ["text": "#### it", "heck": "keys are not text"])

        alice.send(sendFrame(to: .user("bob"), body: "this is Forbidden talk", id: "w3", ref: "r3"))
        let refused = try await alice.nextFrame()
        #expect(refused["type"] == "error")
        #expect(refused["code"] == "x_word_filter")
        #expect(refused["ref"] == "r3")

        // Stored as rewritten, and the refused one not at all.
        bob.send(["type": "sync", "since": 0])
        let sync = try await bob.nextFrame()
        let bodies = try #require(sync["messages"]?.arrayValue).map { $0["body"] }
        #expect(bodies == ["what the ####", ["text": "#### it", "heck": "keys are not text"]])

        let stats = try await gateway.request(.GET, "/admin/stats", token: "admin-test-token", admin: true)
        let block = stats.json?["stages"]?.arrayValue?.first { $0["name"] == "block" }
        #expect(block?["rejected"] == 1)
        alice.close()
        bob.close()
        await gateway.stop()
    }

    @Test func badSettingsOfACustomStagePointAtTheYAMLLine() throws {
        let yaml = TestGateway.yaml(
            directory: FileManager.default.temporaryDirectory, extra: "",
            pipeline: Self.auth + """

                  - stage: example.wordfilter
                    settings: { words: [ok], action: delete }
                """)
        let configuration = try ConfigLoader.load(text: yaml, file: "config.yaml", environment: [:], stageKinds: Set(BuiltInStages.factories.map(\.kind)))
        let line = yaml.split(separator: "\n", omittingEmptySubsequences: false).firstIndex { $0.contains("action: delete") }.map { $0 + 1 }
        let error = #expect(throws: (any Error).self) {
            _ = try Pipeline.build(
                configuration.pipeline, registry: try BuiltInStages.registry(), logger: Logger(label: "test"), clock: SystemClock(),
                stores: Stores(InMemoryStore()), presence: TestPresence(), node: configuration.node)
        }
        let text = error.map { "\($0)" } ?? ""
        #expect(text.contains("config.yaml:\(line ?? 0):"), "\(text)")
        #expect(text.contains("pipeline[1].settings.action: must be one of mask, reject, flag (was 'delete')"), "\(text)")
    }

    // MARK: ratelimit

    @Test func aFloodingClientIsRateLimitedThenClosedWith1008AndOthersAreNot() async throws {
        let clock = TestClock()
        let gateway = try await TestGateway.start(
            pipeline: Self.auth + """

                  - stage: ratelimit
                    on: [send, typing]
                    settings: { per_user: { rate: 0.01, burst: 3 }, per_ip: { rate: 1000, burst: 1000 } }

                """ + Self.store, clock: clock)
        let (alice, _) = try await gateway.connect("alice")
        for n in 0..<40 {
            alice.send(sendFrame(to: .user("bob"), body: .string("flood \(n)"), id: "f\(n)", ref: "f\(n)"))
        }
        var acks: [JSONObject] = []
        var limited: [JSONObject] = []
        var closeCode: UInt16?
        events: while true {
            switch try await alice.next(timeout: 10) {
            case .text(let text):
                let frame = try #require(try JSONParser.parse(text).objectValue)
                if frame["type"] == "ack" { acks.append(frame) } else if frame["code"] == "rate_limited" { limited.append(frame) }
            case .close(let code, _):
                closeCode = code
                break events
            case .disconnected:
                break events
            default:
                continue
            }
        }
        #expect(acks.map { $0["ref"] } == ["f0", "f1", "f2"])
        #expect(limited.count >= 20)
        #expect(limited.first?["ref"] == "f3")
        // 0.01 tokens per second and a frozen clock: the next token is 100 s away.
        #expect(limited.allSatisfy { $0["retry_after_ms"] == 100_000 })
        #expect(closeCode == 1008)

        // Another user is not held back, and `on: [send, typing]` counts typing too.
        let (bob, _) = try await gateway.connect("bob")
        let (carol, _) = try await gateway.connect("carol")
        carol.send(sendFrame(to: .user("bob"), body: "hi bob", id: "c1", ref: "c1"))
        #expect(try await carol.nextFrame()["type"] == "ack")
        #expect(try await bob.nextFrame()["body"] == "hi bob")
        for ref in ["t1", "t2"] {
            carol.send(["type": "typing", "to": ["user": "bob"], "ref": .string(ref)])
            #expect(try await bob.nextFrame()["type"] == "typing")
            clock.advance(by: 1000)  // past the gateway's one-typing-per-second throttle
        }
        carol.send(["type": "typing", "to": ["user": "bob"], "ref": "t3"])
        let typingRefused = try await carol.nextFrame()
        #expect(typingRefused["code"] == "rate_limited")
        #expect(typingRefused["ref"] == "t3")

        // Nothing over the limit was stored: bob's inbox has alice's three and carol's one.
        bob.send(["type": "sync", "since": 0])
        let messages = try #require(try await bob.nextFrame()["messages"]?.arrayValue)
        #expect(messages.map { $0["client_msg_id"] } == ["f0", "f1", "f2", "c1"])
        #expect(messages.prefix(3).map { $0["id"] } == acks.map { $0["id"] })
        carol.close()
        bob.close()
        await gateway.stop()
    }

    // MARK: webhook

    @Test func aWebhookServiceModifiesAndRejectsMessagesAndSurvivesAReload() async throws {
        let secret = "e2e-webhook-secret"
        let service = try await LocalWebhook.start(secret: secret)
        let pipeline = Self.auth + """

              - stage: webhook
                name: moderation
                settings: { url: "\(service.url)", secret: "\(secret)", timeout_ms: 8000 }

            """ + Self.store
        let gateway = try await TestGateway.startFromFile(pipeline: pipeline)
        let (alice, _) = try await gateway.connect("alice")
        let (bob, _) = try await gateway.connect("bob")

        alice.send(sendFrame(to: .user("bob"), body: "hello", id: "h1", ref: "r1"))
        #expect(try await alice.nextFrame()["type"] == "ack")
        #expect(try await bob.nextFrame()["body"] == ["text": "HELLO", "checked_by": "moderation"])

        alice.send(sendFrame(to: .user("bob"), body: "cheap pills, spam", id: "h2", ref: "r2"))
        let refused = try await alice.nextFrame()
        #expect(refused["code"] == "x_spam")
        #expect(refused["message"] == "no spam here")
        #expect(refused["ref"] == "r2")
        #expect(service.signaturesValid == 2)

        // The admin view shows the secret masked.
        let described = try await gateway.request(.GET, "/admin/pipeline", token: "admin-test-token", admin: true)
        #expect(described.body.contains("<redacted>"))
        #expect(!described.body.contains(secret))

        // A reload builds a new webhook stage (a new client) and retires the old one's.
        let reloaded = try await gateway.request(.POST, "/admin/reload", token: "admin-test-token", admin: true)
        #expect(reloaded.status == 200, "\(reloaded.body)")
        alice.send(sendFrame(to: .user("bob"), body: "after reload", id: "h3", ref: "r3"))
        #expect(try await alice.nextFrame()["type"] == "ack")
        #expect(try await bob.nextFrame()["body"] == ["text": "AFTER RELOAD", "checked_by": "moderation"])
        #expect(service.signaturesValid == 3)

        // The service goes away: on_error reject answers `unavailable` with a retry hint.
        await service.stop()
        alice.send(sendFrame(to: .user("bob"), body: "anyone there?", id: "h4", ref: "r4"))
        // The stage's pooled connection may outlive the service's shutdown: then the call ends
        // at timeout_ms rather than at once.
        let unavailable = try await alice.nextFrame(timeout: 30)
        #expect(unavailable["code"] == "unavailable")
        #expect(unavailable["retry_after_ms"] != nil)
        alice.close()
        bob.close()
        // Stopping the node shuts the webhook's HTTP client down (a debug build traps if not).
        await gateway.stop()
    }

    // MARK: docs/STAGES.md, tried as a new user would

    @Test(.enabled(if: ProcessInfo.processInfo.environment["CHATGATE_DOC_CHECK"] == "1"), .timeLimit(.minutes(20)))
    func followingTheStageGuideLiterallyBuildsAWorkingStage() async throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let run = try await Command.run(
            "/bin/bash", [root.appendingPathComponent("scripts/check-stage-docs.sh").path], directory: root.path, timeout: .seconds(1200))
        #expect(run.succeeded, "scripts/check-stage-docs.sh failed:\n\(run.output)\n\(run.error)")
    }
}

/// A moderation service for the webhook stage on 127.0.0.1 port 0: uppercases text, refuses
/// "spam" with `x_spam`, and counts requests whose signature checks out.
final class LocalWebhook: Sendable {
    /// Requests with a correct signature, shared with the route handler.
    final class Counter: Sendable {
        /// Guards the count.
        private let count = Mutex(0)
        func increment() { count.withLock { $0 += 1 } }
        var value: Int { count.withLock { $0 } }
    }

    let port: Int
    private let counter: Counter
    private let group: ServiceGroup
    private let runner: Task<Void, any Error>

    var url: String { "http://127.0.0.1:\(port)/moderate" }
    var signaturesValid: Int { counter.value }

    private init(port: Int, counter: Counter, group: ServiceGroup, runner: Task<Void, any Error>) {
        self.port = port
        self.counter = counter
        self.group = group
        self.runner = runner
    }

    static func start(secret: String) async throws -> LocalWebhook {
        let counter = Counter()
        let router = Router()
        router.post("/moderate") { request, _ -> Response in
            let bytes = Array(try await request.body.collect(upTo: 1 << 20).readableBytesView)
            let mac = HMAC<SHA256>.authenticationCode(for: bytes, using: SymmetricKey(data: Array(secret.utf8)))
            let expected = "sha256=" + mac.map { String(format: "%02x", $0) }.joined()
            if request.headers.first(where: { $0.name.canonicalName == "x-chatgateway-signature" })?.value == expected {
                counter.increment()
            }
            let json = try JSONParser.parse(bytes)
            let text = json["frame"]?["body"]?.stringValue ?? ""
            let answer: JSONValue =
                text.contains("spam")
                ? ["action": "reject", "code": "x_spam", "message": "no spam here"]
                : ["action": "continue", "body": ["text": .string(text.uppercased()), "checked_by": json["stage"] ?? .null]]
            return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: answer.jsonText)))
        }
        let ports = AsyncStream<Int>.makeStream()
        var logger = Logger(label: "local-webhook")
        logger.logLevel = .critical
        let app = Application(
            router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { channel in
                ports.continuation.yield(channel.localAddress?.port ?? 0)
                ports.continuation.finish()
            }, logger: logger)
        let group = ServiceGroup(services: [app], logger: logger)
        let runner = Task { try await group.run() }
        var port = 0
        for await bound in ports.stream { port = bound }
        return LocalWebhook(port: port, counter: counter, group: group, runner: runner)
    }

    func stop() async {
        await group.triggerGracefulShutdown()
        _ = try? await runner.value
    }
}
