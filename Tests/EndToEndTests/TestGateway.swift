import AsyncHTTPClient
import Foundation
import GatewayConfig
import GatewayCore
import GatewayTesting
import Logging
import NIOCore
import NIOHTTP1
import ServiceLifecycle
import StageAuth
import Testing

@testable import chatgate

/// A gateway booted in-process with the real wiring (`Bootstrap`), on port 0 and a fresh SQLite
/// file, for tests over real sockets.
final class TestGateway: Sendable {
    static let secret = "test-secret-0123456789-0123456789-abcdef"

    let directory: URL
    let bootstrap: Bootstrap
    let group: ServiceGroup
    let runner: Task<Void, any Error>
    let port: Int
    let adminPort: Int
    let clock: any GatewayClock
    let http: HTTPClient

    var gateway: Gateway { bootstrap.application.gateway }

    /// Boots a gateway; `extra` is YAML appended at the top level (it may replace sections),
    /// `pipeline` replaces the default pipeline list.
    /// `backend` picks the store when `extra` has no `store:` section (`StoreBackend.default`:
    /// SQLite unless `CHATGATE_TEST_STORE` names PostgreSQL).
    static func start(
        extra: String = "", pipeline: String? = nil, clock: any GatewayClock = SystemClock(), directory: URL? = nil, backend: StoreBackend = .default
    ) async throws -> TestGateway {
        let directory = directory ?? FileManager.default.temporaryDirectory.appendingPathComponent("chatgate-e2e-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let extra = backend == .sqlite || extra.contains("store:") ? extra : try backend.storeLine(directory: directory, media: !extra.contains("media:")) + "\n" + extra
        let yaml = Self.yaml(directory: directory, extra: extra, pipeline: pipeline)
        let configuration = try ConfigLoader.load(text: yaml, file: "test.yaml", environment: [:])
        var logger = Logger(label: "e2e")
        logger.logLevel = ProcessInfo.processInfo.environment["E2E_LOG"].flatMap(Logger.Level.init(rawValue:)) ?? .critical
        let bootstrap = try await Bootstrap.make(configuration: configuration, clock: clock, logger: logger)
        let group = try bootstrap.serviceGroup(logger: logger, signals: [])
        let runner = Task { try await group.run() }
        let ports = await bootstrap.application.listeningPorts()
        return TestGateway(
            directory: directory, bootstrap: bootstrap, group: group, runner: runner, port: ports.public, adminPort: ports.admin, clock: clock)
    }

    static func yaml(directory: URL, extra: String, pipeline: String?) -> String {
        let defaultPipeline = """
              - stage: auth
                settings: { hs256_secret: "\(secret)", leeway_s: 30 }
              - stage: id
              - stage: persist
              - stage: fanout
            """
        let defaults: [(String, String)] = [
            ("node", "node: { id: test-node, worker_id: 7 }"),
            ("listen", "listen: { public: { host: 127.0.0.1, port: 0 }, admin: { host: 127.0.0.1, port: 0, token: admin-test-token } }"),
            ("store", "store: { kind: sqlite, path: \"\(directory.path)/chat.db\", durability: relaxed }"),
            // Blobs in the test's own directory, never the working directory's data/ (shared by
            // the test's nodes: media backend fs is refused on PostgreSQL otherwise).
            ("media", "media: { dir: \"\(directory.path)/media\", shared_dir: true }"),
            // Test clients send no heartbeats: with the default 30 s, a session that only receives
            // was closed (heartbeat timeout) mid-test when a loaded machine made a test that long.
            ("presence", "presence: { offline_after_ms: 600000 }"),
            // Likewise a long-poll session not polled while a slow test does other work.
            ("longpoll", "longpoll: { session_ttl_ms: 600000 }"),
        ]
        // A section given in `extra` replaces the default one.
        let given = Set(extra.split(separator: "\n").compactMap { line in line.split(separator: ":").first.map(String.init) })
        var yaml = defaults.filter { !given.contains($0.0) }.map(\.1).joined(separator: "\n")
        if !extra.isEmpty { yaml += "\n" + extra }
        yaml += "\npipeline:\n" + (pipeline ?? defaultPipeline) + "\n"
        return yaml
    }

    private init(directory: URL, bootstrap: Bootstrap, group: ServiceGroup, runner: Task<Void, any Error>, port: Int, adminPort: Int, clock: any GatewayClock) {
        self.directory = directory
        self.bootstrap = bootstrap
        self.group = group
        self.runner = runner
        self.port = port
        self.adminPort = adminPort
        self.clock = clock
        // The process-wide client: it never needs a shutdown, so a failing test cannot crash the run.
        self.http = HTTPClient.shared
    }

    /// Shuts down (sessions closed with 1001, store flushed) and removes the files. Fails the
    /// test if the gateway left anything behind (`TeardownCheck`): a session, a connection, a
    /// place on the port, a token deadline, or a timer on a `TestClock`.
    func stop(removeFiles: Bool = true, sourceLocation: SourceLocation = #_sourceLocation) async {
        await group.triggerGracefulShutdown()
        _ = try? await runner.value
        let application = bootstrap.application
        let left = await TeardownCheck.leftovers { application.lifecycleCounts }
        #expect(left.isEmpty, "left behind after shutdown: \(left)", sourceLocation: sourceLocation)
        if let clock = clock as? TestClock {
            let timersGone = await TeardownCheck.wait { clock.pendingDeadlines.isEmpty }
            #expect(timersGone, "timers left behind after shutdown, due at \(clock.pendingDeadlines)", sourceLocation: sourceLocation)
        }
        if removeFiles { try? FileManager.default.removeItem(at: directory) }
    }

    func token(_ user: String, ttl: Int = 3600) async throws -> String {
        try await AuthStageFactory.mintHS256(secret: Self.secret, user: user, ttlSeconds: ttl, now: clock.nowMillis(), issuer: nil, audience: nil)
    }

    /// A WebSocket session authenticated in the handshake; returns it with its `hello`.
    func connect(_ user: String, device: String? = nil) async throws -> (WebSocketStream, JSONObject) {
        let token = try await token(user)
        let (stream, status, body) = try await WebSocketStream.connect(port: port, headers: [("Authorization", "Bearer \(token)")])
        #expect(status == 101, "handshake refused: \(body)")
        let hello = try await stream.nextFrame()
        #expect(hello["type"]?.stringValue == "hello")
        return (stream, hello)
    }

    // MARK: HTTP

    struct HTTPAnswer {
        var status: Int
        var headers: [String: String]
        var body: String
        var json: JSONObject? { (try? JSONParser.parse(body))?.objectValue }
    }

    /// - Parameter client: the HTTP client (default: the process-wide one, whose kept-alive
    ///   connections stay open, each holding a place on the public port).
    func request(
        _ method: HTTPMethod, _ path: String, token: String? = nil, body: String? = nil, headers: [(String, String)] = [], admin: Bool = false,
        client: HTTPClient? = nil
    ) async throws -> HTTPAnswer {
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(admin ? adminPort : port)\(path)")
        request.method = method
        if let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if let body {
            request.body = .bytes(ByteBuffer(string: body))
            request.headers.add(name: "Content-Type", value: "application/json")
        }
        let response = try await (client ?? http).execute(request, timeout: .seconds(70))
        var collected = try await response.body.collect(upTo: 64 << 20)
        var headerMap: [String: String] = [:]
        for header in response.headers { headerMap[header.name.lowercased()] = header.value }
        return HTTPAnswer(status: Int(response.status.code), headers: headerMap, body: collected.readString(length: collected.readableBytes) ?? "")
    }
}

extension WebSocketStream {
    /// The next text message parsed as a JSON object.
    func nextFrame(timeout: Double = 10) async throws -> JSONObject {
        let text = try await nextText(timeout: timeout)
        guard case .object(let object) = try JSONParser.parse(text) else {
            throw Timeout(description: "not a JSON object: \(text)")
        }
        return object
    }

    /// Frames until one of `type` arrives (others are returned too, in order).
    func frames(until type: String, timeout: Double = 10) async throws -> [JSONObject] {
        var seen: [JSONObject] = []
        while true {
            let frame = try await nextFrame(timeout: timeout)
            seen.append(frame)
            if frame["type"]?.stringValue == type { return seen }
        }
    }

    func send(_ frame: JSONValue) {
        send(frame.jsonText)
    }
}

/// A long-poll session driven over real HTTP.
struct LongPollClient {
    let gateway: TestGateway
    let token: String
    let session: String
    let hello: JSONObject

    static func open(_ gateway: TestGateway, user: String, device: String? = nil) async throws -> LongPollClient {
        let token = try await gateway.token(user)
        let body = device.map { "{\"device\":\"\($0)\"}" } ?? ""
        let answer = try await gateway.request(.POST, "/v1/lp/open", token: token, body: body)
        #expect(answer.status == 200, "open failed: \(answer.body)")
        let json = try #require(answer.json)
        return LongPollClient(gateway: gateway, token: token, session: try #require(json["session"]?.stringValue), hello: try #require(json["hello"]?.objectValue))
    }

    func send(_ frames: [JSONValue]) async throws -> [JSONObject] {
        let answer = try await gateway.request(.POST, "/v1/lp/send?session=\(session)", token: token, body: JSONValue.array(frames).jsonText)
        #expect(answer.status == 200, "send failed: \(answer.body)")
        return (answer.json?["frames"]?.arrayValue ?? []).compactMap(\.objectValue)
    }

    func poll(timeoutMs: Int = 5000) async throws -> [JSONObject] {
        let answer = try await gateway.request(.GET, "/v1/lp/poll?session=\(session)&timeout_ms=\(timeoutMs)", token: token)
        #expect(answer.status == 200, "poll failed: \(answer.body)")
        return (answer.json?["frames"]?.arrayValue ?? []).compactMap(\.objectValue)
    }

    /// Polls until a frame of `type` arrives or `deadline` seconds pass.
    func poll(until type: String, deadline: Double = 10) async throws -> [JSONObject] {
        let end = Date().addingTimeInterval(deadline)
        var seen: [JSONObject] = []
        while Date() < end {
            let frames = try await poll(timeoutMs: 2000)
            seen += frames
            if frames.contains(where: { $0["type"]?.stringValue == type }) { return seen }
        }
        Issue.record("no '\(type)' frame within \(deadline) s")
        return seen
    }
}

func sendFrame(to: Address, body: JSONValue, id: String, ref: String? = nil) -> JSONValue {
    var object: JSONObject = ["type": "send", "to": to.json, "body": body, "client_msg_id": .string(id)]
    if let ref { object["ref"] = .string(ref) }
    return .object(object)
}

// MARK: Booting from a config file (admin tests: reload re-reads it)

extension TestGateway {
    /// The config file `startFromFile` wrote; `POST /admin/reload` re-reads it.
    var configPath: String { directory.appendingPathComponent("config.yaml").path }

    /// Boots a gateway from a config file written in a fresh directory, so a reload can re-read
    /// it; `extra` and `pipeline` as in `start`. `logger` receives the gateway's logs.
    static func startFromFile(
        extra: String = "", pipeline: String? = nil, clock: any GatewayClock = SystemClock(), logger: Logger? = nil
    ) async throws -> TestGateway {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("chatgate-e2e-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let path = directory.appendingPathComponent("config.yaml").path
        try Self.yaml(directory: directory, extra: extra, pipeline: pipeline).write(toFile: path, atomically: true, encoding: .utf8)
        let configuration = try ConfigLoader.load(path: path, environment: [:], stageKinds: Set(BuiltInStages.factories.map(\.kind)))
        var fallback = Logger(label: "e2e")
        fallback.logLevel = ProcessInfo.processInfo.environment["E2E_LOG"].flatMap(Logger.Level.init(rawValue:)) ?? .critical
        let logger = logger ?? fallback
        let bootstrap = try await Bootstrap.make(configuration: configuration, configPath: path, clock: clock, logger: logger)
        let group = try bootstrap.serviceGroup(logger: logger, signals: [])
        let runner = Task { try await group.run() }
        let ports = await bootstrap.application.listeningPorts()
        return TestGateway(
            directory: directory, bootstrap: bootstrap, group: group, runner: runner, port: ports.public, adminPort: ports.admin, clock: clock)
    }

    /// Rewrites the config file (`extra` and `pipeline` as in `start`), or writes `raw` as is.
    func rewriteConfig(extra: String = "", pipeline: String? = nil, raw: String? = nil) throws {
        let text = raw ?? Self.yaml(directory: directory, extra: extra, pipeline: pipeline)
        try text.write(toFile: configPath, atomically: true, encoding: .utf8)
    }
}
