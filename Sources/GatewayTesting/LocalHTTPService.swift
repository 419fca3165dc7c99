import GatewayCore
import HTTPTypes
import Hummingbird
import HummingbirdHTTP2
import Logging
import NIOCore
import NIOSSL
import ServiceLifecycle
import Synchronization

/// An HTTP service on 127.0.0.1 port 0 that records every request and answers as the test
/// says: the local stand-in for a third party a stage calls (a webhook service, a push
/// provider), so the test runs the stage's real client against a real socket.
///
/// ```swift
/// let service = try await LocalHTTPService.start { request in
///     request.path == "/hook" ? .init(status: 200, body: #"{"action":"continue"}"#) : .init(status: 404)
/// }
/// defer { Task { await service.stop() } }
/// ... // point the stage at service.baseURL + "/hook"
/// #expect(try await service.waitForRequests(1))
/// #expect(service.requests[0].json?["frame"]?["body"] == "hi")
/// ```
///
/// Plain HTTP/1.1, or with `tls` HTTP/2 (ALPN `h2`) and HTTP/1.1 over TLS (`TestCertificate`
/// makes a self-signed certificate). Any method, any path. `Sendable`: the requests and the
/// answer are behind one lock.
public final class LocalHTTPService: Sendable {
    /// One request as it arrived.
    public struct Request: Sendable {
        public var method: String
        /// The path with its query (`/bob?u=1`).
        public var path: String
        /// Header names lowercased; a repeated header keeps its last value.
        public var headers: [String: String]
        public var body: [UInt8]

        /// The body parsed as JSON, if it is JSON.
        public var json: JSONValue? { try? JSONParser.parse(body) }
    }

    /// The answer to one request.
    public struct Reply: Sendable {
        public var status: Int
        public var headers: [String: String]
        public var body: String
        /// Waits this long (real time) before answering: a slow service, as a client's own
        /// timeout measures it.
        public var delayMs: Int
        /// Answers only once `release()` or `stop()` is called: a service too slow for any
        /// timeout, however loaded the machine.
        public var hold: Bool

        public init(status: Int = 200, headers: [String: String] = [:], body: String = "", delayMs: Int = 0, hold: Bool = false) {
            self.status = status
            self.headers = headers
            self.body = body
            self.delayMs = delayMs
            self.hold = hold
        }
    }

    private struct State {
        var answer: @Sendable (Request) -> Reply
        var released = false
        /// Held answers waiting for `release()`.
        var held: [CheckedContinuation<Void, Never>] = []
    }

    /// What the route shares with the service object.
    private final class Box: Sendable {
        /// Guards the answer in force and the held answers.
        let state: Mutex<State>
        /// Every request so far, in arrival order; tests wait on it.
        let requests = Observed<[Request]>([])

        init(answer: @escaping @Sendable (Request) -> Reply) {
            state = Mutex(State(answer: answer))
        }

        /// Records `request`; returns the answer in force when it arrived (decided before a
        /// test waiting for it can change the answer).
        func record(_ request: Request) -> Reply {
            let reply = state.withLock { $0.answer }(request)
            requests.update { $0.append(request) }
            return reply
        }

        func waitForRelease() async {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let now = state.withLock { state -> Bool in
                    if state.released { return true }
                    state.held.append(continuation)
                    return false
                }
                if now { continuation.resume() }
            }
        }
    }

    public let port: Int
    /// `http` or `https`.
    public let scheme: String
    private let box: Box
    private let group: ServiceGroup
    private let runner: Task<Void, any Error>

    /// `scheme://127.0.0.1:port`, without a trailing slash.
    public var baseURL: String { "\(scheme)://127.0.0.1:\(port)" }

    /// Boots the service; `answer` decides each reply (default: 200 with an empty body).
    public static func start(
        tls: TLSConfiguration? = nil, answer: @escaping @Sendable (Request) -> Reply = { _ in Reply() }
    ) async throws -> LocalHTTPService {
        let box = Box(answer: answer)
        let router = Router()
        let respond: @Sendable (Hummingbird.Request, BasicRequestContext) async throws -> Response = { request, _ in
            let body = try await request.body.collect(upTo: 16 << 20)
            var headers: [String: String] = [:]
            for field in request.headers { headers[field.name.canonicalName] = field.value }
            let seen = Request(
                method: request.method.rawValue, path: request.uri.path + (request.uri.query.map { "?" + $0 } ?? ""), headers: headers,
                body: Array(body.readableBytesView))
            let reply = box.record(seen)
            if reply.delayMs > 0 { try? await Task.sleep(for: .milliseconds(reply.delayMs)) }
            if reply.hold { await box.waitForRelease() }
            var fields = HTTPFields()
            for (name, value) in reply.headers {
                if let name = HTTPField.Name(name) { fields[name] = value }
            }
            return Response(status: .init(code: reply.status), headers: fields, body: .init(byteBuffer: ByteBuffer(string: reply.body)))
        }
        for method in [HTTPRequest.Method.get, .post, .put, .patch, .delete] {
            router.on("/", method: method, use: respond)
            router.on("**", method: method, use: respond)
        }
        let ports = AsyncStream<Int>.makeStream()
        var logger = Logger(label: "local-http-service")
        logger.logLevel = .critical
        let configuration = ApplicationConfiguration(address: .hostname("127.0.0.1", port: 0))
        let onRunning: @Sendable (any Channel) async -> Void = { channel in
            ports.continuation.yield(channel.localAddress?.port ?? 0)
            ports.continuation.finish()
        }
        let group: ServiceGroup
        if let tls {
            let app = Application(
                router: router, server: try .http2Upgrade(tlsConfiguration: tls), configuration: configuration, onServerRunning: onRunning,
                logger: logger)
            group = ServiceGroup(services: [app], logger: logger)
        } else {
            let app = Application(router: router, configuration: configuration, onServerRunning: onRunning, logger: logger)
            group = ServiceGroup(services: [app], logger: logger)
        }
        let runner = Task { try await group.run() }
        var port = 0
        for await bound in ports.stream { port = bound }
        return LocalHTTPService(box: box, port: port, scheme: tls == nil ? "http" : "https", group: group, runner: runner)
    }

    private init(box: Box, port: Int, scheme: String, group: ServiceGroup, runner: Task<Void, any Error>) {
        self.box = box
        self.port = port
        self.scheme = scheme
        self.group = group
        self.runner = runner
    }

    /// Every request so far, in arrival order.
    public var requests: [Request] { box.requests.value }
    public var requestCount: Int { box.requests.value.count }

    /// Changes the answer for the requests from now on.
    public func answer(_ answer: @escaping @Sendable (Request) -> Reply) {
        box.state.withLock { $0.answer = answer }
    }

    /// Returns once `count` requests have arrived (true), or after `timeout` of real time
    /// without them (false): a bound on a failing test, not a wait the test relies on.
    public func waitForRequests(_ count: Int, timeout: Duration = .seconds(10)) async -> Bool {
        await box.requests.wait(timeout: timeout) { $0.count >= count }
    }

    /// Lets held answers go, and every later one at once.
    public func release() {
        let held = box.state.withLock { state in
            state.released = true
            defer { state.held = [] }
            return state.held
        }
        for continuation in held { continuation.resume() }
    }

    /// Releases held answers and shuts the server down.
    public func stop() async {
        release()
        await group.triggerGracefulShutdown()
        _ = try? await runner.value
    }
}
