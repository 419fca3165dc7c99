import AsyncHTTPClient

import Crypto
import Foundation
import GatewayCore
import GatewayTesting
import Hummingbird
import Logging
import NIOCore
import NIOHTTP1
import ServiceLifecycle
import StageAuth
import StagePush
import Synchronization
import Testing

/// A webhook push receiver (`LocalHTTPService`): records each POST and answers with the status
/// the test sets.
final class PushHookServer: Sendable {
    let service: LocalHTTPService

    var url: String { service.baseURL + "/push" }

    static func start(status: Int = 200) async throws -> PushHookServer {
        PushHookServer(service: try await LocalHTTPService.start { _ in .init(status: status) })
    }

    private init(service: LocalHTTPService) {
        self.service = service
    }

    var bodies: [JSONValue] { service.requests.compactMap(\.json) }
    var signatures: [String?] { service.requests.map { $0.headers["x-chatgateway-signature"] } }
    func setStatus(_ status: Int) { service.answer { _ in .init(status: status) } }

    /// Waits (bounded) until `count` requests arrived; whether they did.
    func waitFor(_ count: Int, seconds: Int = 15) async throws -> Bool {
        await service.waitForRequests(count, timeout: .seconds(seconds))
    }

    func stop() async {
        await service.stop()
    }
}


@Suite("Push end to end: /v1/devices, delivered over WebSocket, kill -9", .serialized)
struct PushTests {
    static func pipeline(confirmMs: Int = 5000, extra: String = "") -> String {
        """
          - stage: auth
            settings: { hs256_secret: "\(TestGateway.secret)", leeway_s: 30 }
          - stage: id
          - stage: persist
          - stage: fanout
          - stage: push
            on: [send, read, delivered]
            settings: { confirm_ms: \(confirmMs), allow_http: true, max_devices_per_user: 3, providers: { webhook: { secret: "hook-secret" } }\(extra) }
        """
    }

    static func pushStage(_ gateway: TestGateway) throws -> PushStage {
        try #require(gateway.gateway.pipeline.entries.lazy.compactMap { $0.stage as? PushStage }.first)
    }

    @Test("POST /v1/devices: 201 new, 200 same id for the same target, GET lists own, DELETE 204 own and 404 another's; bad input 400, too many 409", arguments: StoreBackend.allCases)
    func devicesAPI(backend: StoreBackend) async throws {
        let gateway = try await TestGateway.start(pipeline: Self.pipeline(), backend: backend)
        let bob = try await gateway.token("bob")
        let carol = try await gateway.token("carol")
        let body = #"{"platform": "webhook", "url": "https://hooks.example/bob", "device": "phone"}"#
        let created = try await gateway.request(.POST, "/v1/devices", token: bob, body: body)
        #expect(created.status == 201)
        let id = try #require(created.json?["id"]?.stringValue)
        #expect(created.json?["platform"] == "webhook" && created.json?["device"] == "phone" && created.json?["created_at"]?.int64Value != nil)
        let again = try await gateway.request(.POST, "/v1/devices", token: bob, body: body)
        #expect(again.status == 200 && again.json?["id"] == .string(id))
        let webpush = try await gateway.request(
            .POST, "/v1/devices", token: bob,
            body: #"{"platform": "webpush", "endpoint": "https://push.example/sub/1", "keys": {"p256dh": "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4", "auth": "BTBZMqHH6r4Tts7J_aSIgg"}}"#)
        // Only the webhook provider is configured here.
        #expect(webpush.status == 400 && webpush.json?["error"]?["code"] == "bad_frame")
        #expect(webpush.body.contains("no provider configured"))
        let bad = try await gateway.request(.POST, "/v1/devices", token: bob, body: #"{"platform": "webhook", "url": "not a url"}"#)
        #expect(bad.status == 400 && bad.json?["error"]?["code"] == "bad_frame" && bad.body.contains("'url'"))
        let notJSON = try await gateway.request(.POST, "/v1/devices", token: bob, body: "{")
        #expect(notJSON.status == 400)
        let unauthenticated = try await gateway.request(.POST, "/v1/devices", body: body)
        #expect(unauthenticated.status == 401)
        for n in 2...3 {
            let answer = try await gateway.request(.POST, "/v1/devices", token: bob, body: #"{"platform": "webhook", "url": "https://hooks.example/\#(n)"}"#)
            #expect(answer.status == 201)
        }
        let tooMany = try await gateway.request(.POST, "/v1/devices", token: bob, body: #"{"platform": "webhook", "url": "https://hooks.example/4"}"#)
        #expect(tooMany.status == 409 && tooMany.json?["error"]?["code"] == "conflict")
        let list = try await gateway.request(.GET, "/v1/devices", token: bob)
        #expect(list.status == 200 && list.json?["devices"]?.arrayValue?.count == 3)
        #expect(try await gateway.request(.GET, "/v1/devices", token: carol).json?["devices"] == [])
        #expect(try await gateway.request(.DELETE, "/v1/devices/\(id)", token: carol).status == 404)
        #expect(try await gateway.request(.DELETE, "/v1/devices/\(id)", token: bob).status == 204)
        #expect(try await gateway.request(.DELETE, "/v1/devices/\(id)", token: bob).status == 404)
        #expect(try await gateway.request(.GET, "/v1/devices", token: bob).json?["devices"]?.arrayValue?.count == 2)
        await gateway.stop()
    }

    /// Waits (bounded) for the push queue to hold `count` notifications: `committed` runs
    /// right after the sender's ack, so the ack alone does not say they are queued.
    static func waitForQueued(_ stage: PushStage, _ count: Int) async throws {
        let deadline = ContinuousClock.now + .seconds(10)
        while await stage.pushFigures().queued + stage.pushFigures().sent < count {
            guard ContinuousClock.now < deadline else { Issue.record("push queue never held \(count)"); return }
            try await Task.sleep(for: .milliseconds(5))
        }
    }

    @Test("over WebSocket: a recipient that confirms with delivered gets no push; one whose socket is open but silent gets it after confirm_ms; one offline gets it at once", arguments: StoreBackend.allCases)
    func confirmationOverWebSocket(backend: StoreBackend) async throws {
        let receiver = try await PushHookServer.start()
        let clock = TestClock()
        let gateway = try await TestGateway.start(pipeline: Self.pipeline(), clock: clock, backend: backend)
        let stage = try Self.pushStage(gateway)
        for user in ["bob", "carol", "dave"] {
            let answer = try await gateway.request(
                .POST, "/v1/devices", token: try await gateway.token(user), body: #"{"platform": "webhook", "url": "\#(receiver.url)?u=\#(user)"}"#)
            #expect(answer.status == 201)
        }
        let (alice, _) = try await gateway.connect("alice")
        let (bob, _) = try await gateway.connect("bob")
        let (carol, _) = try await gateway.connect("carol")
        for (n, user) in ["bob", "carol", "dave"].enumerated() {
            alice.send(sendFrame(to: .user(user), body: .string("hello \(user)"), id: "m\(n)"))
            #expect(try await alice.nextFrame()["type"] == "ack")
        }
        let toBob = try await bob.nextFrame()
        #expect(toBob["type"] == "message" && toBob["seq"] == 1)
        #expect(try await carol.nextFrame()["type"] == "message")
        try await Self.waitForQueued(stage, 3)
        // bob's device holds everything up to seq 1; the ping after it shows it was handled.
        bob.send(["type": "delivered", "seq": 1])
        bob.send(["type": "ping", "ref": "p"])
        #expect(try await bob.nextFrame()["type"] == "pong")
        // dave is offline: at once (the stage's worker, kicked by the commit, may send it first;
        // runDue covers the case where it has not yet).
        await stage.runDue()
        #expect(try await receiver.waitFor(1))
        #expect(receiver.bodies.map { $0["user"] } == ["dave"])
        clock.advance(by: 4999)
        await stage.runDue()
        #expect(receiver.bodies.count == 1)
        clock.advance(by: 1)
        await stage.runDue()
        #expect(try await receiver.waitFor(2))
        #expect(receiver.bodies.map { $0["user"] } == ["dave", "carol"])
        #expect(receiver.signatures.allSatisfy { $0?.hasPrefix("sha256=") == true })
        // A malformed delivered is a bad_frame.
        bob.send(["type": "delivered", "seq": "x", "ref": "d"])
        let refused = try await bob.nextFrame()
        #expect(refused["type"] == "error" && refused["code"] == "bad_frame" && refused["ref"] == "d")
        // The figures are real. The receiver counts a request when it arrives, the gateway a
        // notification once the answer is back: wait for the figures, do not read them once.
        let stats = try await gateway.stats { $0["push"] == ["sent": 2, "failed": 0, "queued": 0] }
        #expect(stats["push"] == ["sent": 2, "failed": 0, "queued": 0])
        let sentLine = #"chatgate_push_provider_total{provider="webhook",outcome="sent"} 2"#
        var metrics = try await gateway.request(.GET, "/metrics", token: "admin-test-token", admin: true)
        let deadline = ContinuousClock.now + .seconds(15)
        while !metrics.body.contains(sentLine), ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(10))
            metrics = try await gateway.request(.GET, "/metrics", token: "admin-test-token", admin: true)
        }
        #expect(metrics.body.contains("chatgate_push_cancelled_total 1"))
        #expect(metrics.body.contains(sentLine))
        alice.close()
        bob.close()
        carol.close()
        await gateway.stop()
        await receiver.stop()
    }

    @Test("delivered over long-poll cancels too", arguments: StoreBackend.allCases)
    func deliveredOverLongPoll(backend: StoreBackend) async throws {
        let clock = TestClock()
        let gateway = try await TestGateway.start(pipeline: Self.pipeline(), clock: clock, backend: backend)
        let stage = try Self.pushStage(gateway)
        _ = try await gateway.request(.POST, "/v1/devices", token: try await gateway.token("bob"), body: #"{"platform": "webhook", "url": "http://127.0.0.1:9/x"}"#)
        let bob = try await LongPollClient.open(gateway, user: "bob")
        let (alice, _) = try await gateway.connect("alice")
        alice.send(sendFrame(to: .user("bob"), body: "hi", id: "lp1"))
        #expect(try await alice.nextFrame()["type"] == "ack")
        try await Self.waitForQueued(stage, 1)
        let replies = try await bob.send([["type": "delivered", "seq": 1]])
        #expect(replies.isEmpty)
        #expect(await stage.pushFigures().queued == 0)
        #expect(await stage.pushFigures().cancelled == 1)
        alice.close()
        await gateway.stop()
    }

    @Test("the repository's config.yaml, with its push stage, passes check-config")
    func defaultConfig() async throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let run = try await Command.run(ChildGateway.binary.path, ["check-config", root.appendingPathComponent("config.yaml").path])
        let text = run.output + run.error
        #expect(run.succeeded, "\(text)")
        #expect(text.contains("push (push) on [delivered,read,send]"))
    }

    @Test("kill -9 with a push pending loses nothing: the restarted gateway delivers it")
    func killNine() async throws {
        let receiver = try await PushHookServer.start(status: 503)
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("chatgate-push-kill-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("config.yaml").path
        try """
            node: { id: push-node, worker_id: 4 }
            listen:
              public: { host: 127.0.0.1, port: 0 }
              admin: { host: 127.0.0.1, port: 0, token: admin-test-token }
            store: { kind: sqlite, path: "\(directory.path)/chat.db", durability: full }
            pipeline:
              - stage: auth
                settings: { hs256_secret: "\(TestGateway.secret)" }
              - stage: id
              - stage: persist
              - stage: fanout
              - stage: push
                on: [send, read, delivered]
                settings: { allow_http: true, backoff_ms: 200, max_backoff_ms: 200, max_attempts: 100, lease_ms: 1000, providers: { webhook: { secret: "hook-secret" } } }
            """.write(toFile: path, atomically: true, encoding: .utf8)
        let first = try await ChildGateway.start(configPath: path)
        defer { first.killNow() }  // no gateway left running when the test throws
        let http = HTTPTestClient(port: first.publicPort)
        let bobToken = try await TestGatewayTokens.token("bob")
        let registered = try await http.request("POST", "/v1/devices", token: bobToken, body: #"{"platform": "webhook", "url": "\#(receiver.url)"}"#)
        #expect(registered.status == 201)
        let aliceToken = try await TestGatewayTokens.token("alice")
        let ack = try await http.request(
            "POST", "/v1/messages", token: aliceToken, body: sendFrame(to: .user("bob"), body: "while you were out", id: "k1").jsonText)
        #expect(ack.status == 200)
        // The receiver is down (503): the notification waits in the queue, retried.
        #expect(try await receiver.waitFor(1))
        await first.kill9()
        let seen = receiver.bodies.count
        receiver.setStatus(200)
        // The restarted gateway may send it while it is still starting: count from before.
        let second = try await ChildGateway.start(configPath: path)
        defer { second.killNow() }
        #expect(try await receiver.waitFor(seen + 1))
        let delivered = try #require(receiver.bodies.last)
        #expect(delivered["user"] == "bob" && delivered["messages"]?.arrayValue?.first?["from"] == "alice")
        let admin = HTTPTestClient(port: second.adminPort)
        let deadline = ContinuousClock.now + .seconds(10)
        var push: JSONValue?
        while ContinuousClock.now < deadline {
            push = try JSONParser.parse(try await admin.request("GET", "/admin/stats", token: "admin-test-token", body: nil).body)["push"]
            if push == ["sent": 1, "failed": 0, "queued": 0] { break }
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(push == ["sent": 1, "failed": 0, "queued": 0])
        _ = await second.terminate()
        await receiver.stop()
    }
}

/// Tokens for the child gateway of `killNine` (it uses `TestGateway.secret`).
enum TestGatewayTokens {
    static func token(_ user: String) async throws -> String {
        try await AuthStageFactory.mintHS256(
            secret: TestGateway.secret, user: user, ttlSeconds: 3600, now: SystemClock().nowMillis(), issuer: nil, audience: nil)
    }
}

/// Plain HTTP requests to a gateway on a port (the child gateway of `killNine`).
struct HTTPTestClient {
    let port: Int

    func request(_ method: String, _ path: String, token: String?, body: String?) async throws -> (status: Int, body: String) {
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)\(path)")
        request.method = HTTPMethod(rawValue: method)
        if let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        if let body {
            request.body = .bytes(ByteBuffer(string: body))
            request.headers.add(name: "Content-Type", value: "application/json")
        }
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
        var collected = try await response.body.collect(upTo: 1 << 20)
        return (Int(response.status.code), collected.readString(length: collected.readableBytes) ?? "")
    }
}
