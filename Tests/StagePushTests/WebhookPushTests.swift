import Crypto
import Foundation
import GatewayCore
import GatewayTesting
import Testing
@testable import StagePush

@Suite("Push: webhook provider, queue, retries and confirmations")
struct WebhookPushTests {
    static func hmac(_ body: [UInt8], _ secret: String) -> String {
        "sha256=" + HMAC<SHA256>.authenticationCode(for: body, using: SymmetricKey(data: Array(secret.utf8))).map { String(format: "%02x", $0) }.joined()
    }

    @Test("an offline recipient is notified at once, signed; the payload is PROTOCOL.md section 9's, without the body", arguments: PushBackend.allCases)
    func offlineSignedPayload(backend: PushBackend) async throws {
        let receiver = try await LocalHTTPService.start()
        receiver.answer { _ in .init(status: 200) }
        let fixture = try await PushFixture.make(settings: webhookSettings(), backend: backend)
        try await fixture.register("bob", ["platform": "webhook", "url": .string(receiver.baseURL + "/bob")])
        try await fixture.send("secret text", id: 1001)
        #expect(try await fixture.queue.queuedCount() == 1)
        #expect(await fixture.stage.runDue() == 1)
        let request = try #require(receiver.requests.first)
        #expect(request.path == "/bob")
        #expect(request.headers["content-type"] == "application/json")
        #expect(request.headers["x-chatgateway-signature"] == Self.hmac(request.body, "s3cret"))
        let json = try JSONParser.parse(request.body)
        #expect(json["type"] == "push")
        #expect(json["user"] == "bob")
        #expect(json["count"] == 1)
        #expect(json["body"] == nil)
        let entry = try #require(json["messages"]?.arrayValue?.first)
        #expect(entry["id"] == "1001")
        #expect(entry["seq"] == 1)
        #expect(entry["from"] == "alice")
        #expect(entry["to"] == ["user": "bob"])
        #expect(entry["ts"] == .int(fixture.clock.nowMillis()))
        #expect(try await fixture.queue.queuedCount() == 0)
        let figures = await fixture.stage.pushFigures()
        #expect(figures.sent == 1 && figures.byProvider[.webhook]?.sent == 1 && figures.queued == 0)
        // The sender is never notified of their own message.
        #expect(!receiver.requests.contains { (try? JSONParser.parse($0.body))?["user"] == "alice" })
        await receiver.stop()
        await fixture.close()
    }

    @Test("include_body: true puts the newest body in the notification")
    func includeBody() async throws {
        let receiver = try await LocalHTTPService.start()
        let fixture = try PushFixture.make(settings: webhookSettings(extra: #""include_body": true"#))
        try await fixture.register("bob", ["platform": "webhook", "url": .string(receiver.baseURL + "/bob")])
        try await fixture.send("hello bob", id: 1)
        await fixture.stage.runDue()
        #expect(try JSONParser.parse(try #require(receiver.requests.first).body)["body"] == "hello bob")
        await receiver.stop()
        await fixture.close()
    }

    @Test("a receiver down for a while still gets the notification after it comes back (the clock is stepped past the backoff)", arguments: PushBackend.allCases)
    func receiverDownThenBack(backend: PushBackend) async throws {
        let receiver = try await LocalHTTPService.start()
        receiver.answer { _ in .init(status: 503) }
        let fixture = try await PushFixture.make(settings: webhookSettings(extra: #""backoff_ms": 1000, "max_attempts": 5"#), backend: backend)
        try await fixture.register("bob", ["platform": "webhook", "url": .string(receiver.baseURL + "/bob")])
        try await fixture.send("m", id: 7)
        #expect(await fixture.stage.runDue() == 1)
        #expect(receiver.requests.count == 1)
        // Not due again before its backoff (at least half of backoff_ms).
        fixture.clock.advance(by: 400)
        #expect(await fixture.stage.runDue() == 0)
        fixture.clock.advance(by: 700)
        #expect(await fixture.stage.runDue() == 1)
        #expect(receiver.requests.count == 2)
        receiver.answer { _ in .init(status: 200) }
        fixture.clock.advance(by: 2100)
        #expect(await fixture.stage.runDue() == 1)
        #expect(receiver.requests.count == 3)
        #expect(try await fixture.queue.queuedCount() == 0)
        let figures = await fixture.stage.pushFigures()
        #expect(figures.sent == 1 && figures.retried == 2 && figures.failed == 0)
        await receiver.stop()
        await fixture.close()
    }

    @Test("a refused connection is retried; after max_attempts the notification is given up")
    func givesUp() async throws {
        let receiver = try await LocalHTTPService.start()
        let url = receiver.baseURL + "/gone-away"
        await receiver.stop()  // nothing listens there now
        // async-http-client retries a refused connection until the call's deadline: keep it short.
        let fixture = try PushFixture.make(
            settings: webhookSettings(timeoutMs: 300, extra: #""backoff_ms": 100, "max_backoff_ms": 100, "max_attempts": 3"#))
        try await fixture.register("bob", ["platform": "webhook", "url": .string(url)])
        try await fixture.send("m", id: 8)
        for _ in 0..<3 {
            #expect(await fixture.stage.runDue() == 1)
            fixture.clock.advance(by: 100)
        }
        #expect(try await fixture.queue.queuedCount() == 0)
        let figures = await fixture.stage.pushFigures()
        #expect(figures.failed == 1 && figures.retried == 2 && figures.sent == 0)
        await fixture.close()
    }

    @Test("Retry-After is honoured to the millisecond")
    func retryAfter() async throws {
        let receiver = try await LocalHTTPService.start()
        receiver.answer { _ in .init(status: 429, headers: ["Retry-After": "30"]) }
        let fixture = try PushFixture.make(settings: webhookSettings())
        try await fixture.register("bob", ["platform": "webhook", "url": .string(receiver.baseURL + "/bob")])
        try await fixture.send("m", id: 9)
        await fixture.stage.runDue()
        receiver.answer { _ in .init(status: 200) }
        fixture.clock.advance(by: 29_999)
        #expect(await fixture.stage.runDue() == 0)
        fixture.clock.advance(by: 1)
        #expect(await fixture.stage.runDue() == 1)
        #expect(receiver.requests.count == 2)
        await receiver.stop()
        await fixture.close()
    }

    @Test("404 or 410 from the target removes it and its notifications", arguments: [404, 410], PushBackend.durable)
    func goneRemovesTarget(status: Int, backend: PushBackend) async throws {
        let receiver = try await LocalHTTPService.start()
        receiver.answer { _ in .init(status: status) }
        let fixture = try await PushFixture.make(settings: webhookSettings(), backend: backend)
        try await fixture.register("bob", ["platform": "webhook", "url": .string(receiver.baseURL + "/bob")])
        try await fixture.send("m", id: 10)
        await fixture.stage.runDue()
        #expect(try await fixture.devices.targets(of: "bob").isEmpty)
        #expect(await fixture.stage.pushFigures().droppedTargets == 1)
        await receiver.stop()
        await fixture.close()
    }

    @Test("confirmations: online and confirms → no push; online and silent → push after confirm_ms; offline → push at once", arguments: PushBackend.allCases)
    func confirmations(backend: PushBackend) async throws {
        let receiver = try await LocalHTTPService.start()
        receiver.answer { _ in .init(status: 200) }
        let fixture = try await PushFixture.make(settings: webhookSettings(extra: #""confirm_ms": 5000"#), backend: backend)
        for user in ["bob", "carol", "dave", "erin"] {
            try await fixture.register(user, ["platform": "webhook", "url": .string(receiver.baseURL + "/" + user)])
        }
        fixture.harness.presence.set("carol", online: true)
        fixture.harness.presence.set("dave", online: true)
        fixture.harness.presence.set("erin", online: true)
        try await fixture.send("to bob", to: .user("bob"), id: 11)
        try await fixture.send("to carol", to: .user("carol"), id: 12)
        try await fixture.send("to dave", to: .user("dave"), id: 13)
        try await fixture.send("to erin", to: .user("erin"), id: 14)
        // Offline bob at once; the online ones not yet.
        #expect(await fixture.stage.runDue() == 1)
        #expect(receiver.requests.map(\.path) == ["/bob"])
        // carol's device says it holds her inbox up to seq 1; erin reads the conversation.
        try await fixture.delivered("carol", seq: 1)
        try await fixture.read("erin", with: .user("alice"), upTo: 14)
        fixture.clock.advance(by: 4999)
        #expect(await fixture.stage.runDue() == 0)
        fixture.clock.advance(by: 1)
        #expect(await fixture.stage.runDue() == 1)
        #expect(receiver.requests.map(\.path) == ["/bob", "/dave"])
        #expect(await fixture.stage.pushFigures().cancelled == 2)
        await receiver.stop()
        await fixture.close()
    }

    @Test("a delivered seq below the message does not cancel it")
    func deliveredBelow() async throws {
        let fixture = try PushFixture.make(settings: webhookSettings(extra: #""confirm_ms": 5000"#))
        try await fixture.register("bob", ["platform": "webhook", "url": "http://127.0.0.1:9/x"])
        fixture.harness.presence.set("bob", online: true)
        try await fixture.send("one", id: 21)
        try await fixture.send("two", id: 22)  // joins the waiting notification (seq 2)
        try await fixture.delivered("bob", seq: 1)
        #expect(try await fixture.queue.queuedCount() == 1)
        try await fixture.delivered("bob", seq: 2)
        #expect(try await fixture.queue.queuedCount() == 0)
        await fixture.close()
    }

    @Test("confirm_ms: 0 never notifies an online user")
    func confirmZero() async throws {
        let fixture = try PushFixture.make(settings: webhookSettings(extra: #""confirm_ms": 0"#), on: [.send])
        try await fixture.register("bob", ["platform": "webhook", "url": "http://127.0.0.1:9/x"])
        fixture.harness.presence.set("bob", online: true)
        try await fixture.send("m", id: 31)
        #expect(try await fixture.queue.queuedCount() == 0)
        await fixture.close()
    }

    @Test("several messages to an offline user within collapse_ms become one notification per conversation", arguments: PushBackend.allCases)
    func collapse(backend: PushBackend) async throws {
        let receiver = try await LocalHTTPService.start()
        receiver.answer { _ in .init(status: 200) }
        let fixture = try await PushFixture.make(settings: webhookSettings(extra: #""collapse_ms": 10000"#), backend: backend)
        try await fixture.register("bob", ["platform": "webhook", "url": .string(receiver.baseURL + "/bob")])
        try await fixture.send("first", id: 41)
        #expect(await fixture.stage.runDue() == 1)  // the first rings at once
        fixture.clock.advance(by: 1000)
        try await fixture.send("second", id: 42)
        try await fixture.send("third", id: 43)
        try await fixture.send("from carol", from: "carol", to: .user("bob"), id: 44)  // another conversation
        #expect(await fixture.stage.runDue() == 1)  // carol's conversation: its own window
        fixture.clock.advance(by: 8999)
        #expect(await fixture.stage.runDue() == 0)
        fixture.clock.advance(by: 1)
        #expect(await fixture.stage.runDue() == 1)
        #expect(receiver.requests.count == 3)
        let collapsed = try JSONParser.parse(receiver.requests[2].body)
        #expect(collapsed["count"] == 2)
        #expect(collapsed["messages"]?.arrayValue?.compactMap { $0["id"]?.stringValue } == ["42", "43"])
        let other = try JSONParser.parse(receiver.requests[1].body)
        #expect(other["messages"]?.arrayValue?.first?["from"] == "carol")
        await receiver.stop()
        await fixture.close()
    }

    @Test("a group message notifies every member with targets but the sender, each on each target", arguments: PushBackend.allCases)
    func group(backend: PushBackend) async throws {
        let receiver = try await LocalHTTPService.start()
        receiver.answer { _ in .init(status: 200) }
        let fixture = try await PushFixture.make(settings: webhookSettings(), backend: backend)
        try await fixture.stores.groups.createGroup(
            GroupInfo(id: "g1", name: "team", owner: "alice", members: ["alice", "bob", "carol", "dave"], createdAt: 0))
        for user in ["alice", "bob", "carol"] {
            try await fixture.register(user, ["platform": "webhook", "url": .string(receiver.baseURL + "/" + user)])
        }
        try await fixture.register("carol", ["platform": "webhook", "url": .string(receiver.baseURL + "/carol-tablet")])
        try await fixture.send("hello team", to: .group("g1"), id: 801)
        #expect(await fixture.stage.runDue() == 3)
        #expect(Set(receiver.requests.map(\.path)) == ["/bob", "/carol", "/carol-tablet"])
        let json = try JSONParser.parse(try #require(receiver.requests.first).body)
        #expect(json["messages"]?.arrayValue?.first?["to"] == ["group": "g1"])
        await receiver.stop()
        await fixture.close()
    }

    @Test("the worker service drains the queue when kicked, and stops cleanly")
    func workerService() async throws {
        let receiver = try await LocalHTTPService.start()
        receiver.answer { _ in .init(status: 200) }
        let fixture = try PushFixture.make(settings: webhookSettings(extra: #""poll_ms": 60000"#))
        try await fixture.register("bob", ["platform": "webhook", "url": .string(receiver.baseURL + "/bob")])
        let worker = Task { await fixture.stage.dispatcher.run() }
        try await fixture.send("m", id: 51)  // kicks the worker
        #expect(await receiver.waitForRequests(1))
        #expect(receiver.requests.count == 1)
        worker.cancel()
        await worker.value
        await receiver.stop()
        await fixture.close()
    }
}

@Suite("Push: retry backoff")
struct BackoffTests {
    static func dispatcher(jitter: Double) -> PushDispatcher {
        let store = InMemoryStore()
        return PushDispatcher(
            settings: PushSettings(backoffMs: 1000, maxBackoffMs: 10_000, providers: .init(webhook: .init())), devices: store, queue: store,
            providers: [:], clients: [], clock: TestClock(), logger: .init(label: "backoff"), jitter: { jitter })
    }

    @Test("exponential, capped at max_backoff_ms, with jitter between half and all of it", arguments: [
        (1, 0.0, 500), (1, 0.5, 750), (2, 0.0, 1000), (3, 0.999, 3998), (4, 0.0, 4000), (5, 0.0, 5000), (30, 0.0, 5000), (100, 0.5, 7500),
    ])
    func backoff(attempt: Int, jitter: Double, expected: Int64) {
        #expect(Self.dispatcher(jitter: jitter).backoff(attempt: attempt) == expected)
    }
}
