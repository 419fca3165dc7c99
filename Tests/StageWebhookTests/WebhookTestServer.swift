import Crypto
import Foundation
import GatewayCore
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization

/// A webhook service on 127.0.0.1 port 0 whose answers the test sets, counting the calls that
/// reach it and checking each request's signature against `secret`.
final class WebhookTestServer: Sendable {
    struct Reply: Sendable {
        var status: Int = 200
        var body: String = #"{"action":"continue"}"#
        var delayMs: Int = 0
        /// Answer only once `release()` or `stop()` is called (at most 30 s later): a service
        /// that is too slow for any timeout, however loaded the machine.
        var hold = false
    }

    struct Call: Sendable {
        var request: JSONObject
        /// The `X-ChatGateway-Signature` header, if any.
        var signature: String?
        /// Whether the signature is the HMAC-SHA256 of the raw body with `secret`.
        var signatureValid: Bool
        var contentType: String?
    }

    struct State {
        var calls: [Call] = []
        var released = false
        var answer: @Sendable (JSONObject) -> Reply = { _ in Reply() }
    }

    let secret: String?
    let port: Int
    private let box: Box
    private let group: ServiceGroup
    private let runner: Task<Void, any Error>

    var url: String { "http://127.0.0.1:\(port)/hook" }

    /// Boots the server; `answer` decides each reply from the request JSON.
    static func start(secret: String? = nil, answer: @escaping @Sendable (JSONObject) -> Reply = { _ in Reply() }) async throws -> WebhookTestServer {
        let box = Box(answer: answer, secret: secret)
        let router = Router()
        router.post("/hook") { request, _ -> Response in
            let body = try await request.body.collect(upTo: 1 << 20)
            let bytes = Array(body.readableBytesView)
            let signature = request.headers.first { $0.name.canonicalName == "x-chatgateway-signature" }?.value
            var valid = false
            if let secret = box.secret, let signature {
                let mac = HMAC<SHA256>.authenticationCode(for: bytes, using: SymmetricKey(data: Array(secret.utf8)))
                valid = signature == "sha256=" + mac.map { String(format: "%02x", $0) }.joined()
            }
            let json = (try? JSONParser.parse(bytes))?.objectValue ?? [:]
            let reply = box.state.withLock { state -> Reply in
                state.calls.append(Call(request: json, signature: signature, signatureValid: valid, contentType: request.headers[.contentType]))
                return state.answer(json)
            }
            if reply.delayMs > 0 { try? await Task.sleep(for: .milliseconds(reply.delayMs)) }
            if reply.hold {
                let deadline = ContinuousClock.now + .seconds(30)
                while !box.state.withLock({ $0.released }), ContinuousClock.now < deadline {
                    try? await Task.sleep(for: .milliseconds(10))
                }
            }
            return Response(
                status: .init(code: reply.status), headers: [.contentType: "application/json"],
                body: .init(byteBuffer: ByteBuffer(string: reply.body)))
        }
        let ports = AsyncStream<Int>.makeStream()
        var logger = Logger(label: "webhook-test-server")
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
        return WebhookTestServer(box: box, port: port, group: group, runner: runner)
    }

    /// What the route handler shares with the server object.
    final class Box: Sendable {
        /// Guards the calls seen and the answer in force.
        let state: Mutex<State>
        let secret: String?
        init(answer: @escaping @Sendable (JSONObject) -> Reply, secret: String?) {
            state = Mutex(State(answer: answer))
            self.secret = secret
        }
    }

    private init(box: Box, port: Int, group: ServiceGroup, runner: Task<Void, any Error>) {
        self.box = box
        self.secret = box.secret
        self.port = port
        self.group = group
        self.runner = runner
    }

    var calls: [Call] { box.state.withLock { $0.calls } }
    var callCount: Int { box.state.withLock { $0.calls.count } }

    /// Changes the answer for the calls from now on.
    func answer(_ answer: @escaping @Sendable (JSONObject) -> Reply) {
        box.state.withLock { $0.answer = answer }
    }

    func answer(status: Int = 200, body: String = #"{"action":"continue"}"#, delayMs: Int = 0) {
        answer { _ in Reply(status: status, body: body, delayMs: delayMs) }
    }

    /// Waits until `count` calls have arrived, up to `seconds`; whether they did.
    func waitForCalls(_ count: Int, seconds: Int = 10) async throws -> Bool {
        let deadline = ContinuousClock.now + .seconds(seconds)
        while callCount < count {
            guard ContinuousClock.now < deadline else { return false }
            try await Task.sleep(for: .milliseconds(5))
        }
        return true
    }

    /// Lets held answers go.
    func release() {
        box.state.withLock { $0.released = true }
    }

    func stop() async {
        release()
        await group.triggerGracefulShutdown()
        _ = try? await runner.value
    }
}
