import GatewayCore
import HTTPTypes
import Hummingbird
import NIOCore
import Synchronization

/// Whether the node takes traffic: `/readyz` answers 503 once draining starts.
public final class Readiness: Sendable {
    /// Guards the ready flag.
    private let state = Mutex((listening: false, draining: false))

    public init() {}

    public var isReady: Bool { state.withLock { $0.listening && !$0.draining } }
    public func markListening() { state.withLock { $0.listening = true } }
    public func markDraining() { state.withLock { $0.draining = true } }
}

/// The admin port's routes (PROTOCOL.md section 7; docs/OPERATIONS.md).
///
/// Everything but `/healthz`, `/readyz` and the dashboard's page needs the admin token; the page
/// itself holds no figures (its script fetches them with the token). Mutations are POST only:
/// a GET on them is `405`.
struct AdminRoutes: Sendable {
    let gateway: Gateway
    let longPoll: LongPollRegistry
    let readiness: Readiness
    let token: Secret
    let reloader: PipelineReloader
    let metrics: MetricsExporter
    /// `GatewayApplication.lifecycleCounts`: what the node holds for connections.
    let lifecycle: @Sendable () -> [String: Int]

    /// The most sessions `/admin/connections` lists in one answer.
    static let maxListedSessions = 10_000
    /// WebSocket sessions closed by `/admin/kick` get this code (policy): the operator removed
    /// them; the client may reconnect with a valid token.
    static let kickCloseCode = CloseCode.policy

    func register(on router: Router<GatewayRequestContext>) {
        router.get("/healthz") { _, _ in Response(status: .ok, headers: [.contentType: "text/plain"], body: .init(byteBuffer: ByteBuffer(string: "ok"))) }
        router.get("/readyz") { _, _ in
            // Ready: listening, not draining, and the store takes commits (probed again while
            // the last commit failed).
            let storeWritable = gateway.committer.isHealthy ? true : await gateway.committer.probe()
            return self.readiness.isReady && storeWritable
                ? Response(status: .ok, headers: [.contentType: "text/plain"], body: .init(byteBuffer: ByteBuffer(string: "ready")))
                : Response(status: .serviceUnavailable, headers: [.contentType: "text/plain"], body: .init(byteBuffer: ByteBuffer(string: "not ready")))
        }
        router.get("/admin") { _, _ in AdminDashboard.response() }

        let authorized = router.group().add(middleware: AdminTokenMiddleware(token: token))
        authorized.get("/metrics") { _, _ in await self.prometheus() }
        let admin = authorized.group("/admin")
        admin.get("stats") { _, _ in HTTPReply.json(await self.stats(), noStore: true) }
        admin.get("pipeline") { _, _ in HTTPReply.json(Self.describe(self.gateway.pipeline), noStore: true) }
        admin.post("reload") { _, _ in await self.reload() }
        admin.get("reload") { _, _ in Self.postOnly() }
        admin.get("connections") { request, _ in try self.connections(request) }
        admin.post("kick") { request, context in try await self.kick(request, context) }
        admin.get("kick") { _, _ in Self.postOnly() }
    }

    func figures() async -> GatewayFigures {
        await GatewayFigures.read(gateway: gateway, reloads: reloader.counts)
    }

    func stats() async -> JSONValue {
        guard case .object(var object) = await figures().json else { return await figures().json }
        // An extension of PROTOCOL.md §7's shape: per-connection state held, all 0 when idle.
        var counts = JSONObject()
        for (name, value) in lifecycle().sorted(by: { $0.key < $1.key }) { counts[name] = .int(value) }
        object["lifecycle"] = .object(counts)
        return .object(object)
    }

    private func prometheus() async -> Response {
        let text = metrics.render(await figures())
        return Response(
            status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8", .cacheControl: "no-store"],
            body: .init(byteBuffer: ByteBuffer(bytes: text)))
    }

    private static func postOnly() -> Response {
        HTTPReply.error(GatewayError(.badFrame, "method not allowed: use POST"), status: 405, headers: [("Allow", "POST")])
    }

    // MARK: Pipeline

    /// The pipeline in force: names, kinds, frame kinds and effective settings (secrets are
    /// `<redacted>` already in `Entry.settings`).
    static func describe(_ pipeline: Pipeline) -> JSONValue {
        let stages: [JSONValue] = pipeline.entries.map { entry in
            [
                "name": .string(entry.name), "kind": .string(entry.kind),
                "on": .array(entry.on.map(\.rawValue).sorted().map { .string($0) }),
                "settings": entry.settings,
            ]
        }
        return ["stages": .array(stages)]
    }

    private func reload() async -> Response {
        do {
            let pipeline = try await reloader.reload()
            guard case .object(var object) = Self.describe(pipeline) else { return HTTPReply.json(["reloaded": true]) }
            object["reloaded"] = true
            return HTTPReply.json(.object(object), noStore: true)
        } catch {
            guard error.isInvalidConfig else { return HTTPReply.error(GatewayError(.conflict, error.description)) }
            // The PROTOCOL error shape, plus the diagnostics one per entry for tools.
            var parts = HTTPReply.errorParts(GatewayError(.badFrame, error.description), status: 400)
            let diagnostics = error.description.split(separator: "\n").map { JSONValue.string(String($0)) }
            let body: JSONValue = [
                "error": ["code": .string(GatewayError.Code.badFrame.rawValue), "message": .string(error.description)],
                "diagnostics": .array(diagnostics),
            ]
            parts.body = ByteBuffer(bytes: body.jsonBytes)
            return Response(status: parts.status, headers: parts.headers, body: .init(byteBuffer: parts.body))
        }
    }

    // MARK: Connections

    private func connections(_ request: Request) throws -> Response {
        let limit: Int
        if let text = request.query("limit") {
            guard let value = Int(text), (1...Self.maxListedSessions).contains(value) else {
                throw GatewayError.badFrame("'limit' must be 1...\(Self.maxListedSessions)")
            }
            limit = value
        } else {
            limit = 1000
        }
        let sessions: [Session]
        if let user = request.query("user") {
            guard Address.isValidID(user) else { throw GatewayError.badFrame("'user' must be 1 to 64 characters of [A-Za-z0-9_.@-]") }
            sessions = gateway.hub.sessions(of: user)
        } else {
            sessions = gateway.hub.allSessions()
        }
        let listed = sessions.sorted { ($0.openedAt, $0.id) < ($1.openedAt, $1.id) }.prefix(limit)
        let items: [JSONValue] = listed.map { session in
            let p = session.principal
            return [
                "session": .string(p.session), "user": .string(p.user), "device": .string(p.device),
                "transport": .string(p.transport.rawValue), "remote_address": p.remoteAddress.map { .string($0) } ?? .null,
                "opened_at": .int(session.openedAt), "last_active_at": .int(session.lastActiveAt.load(ordering: .relaxed)),
            ]
        }
        return HTTPReply.json(
            ["sessions": .array(items), "total": .int(sessions.count), "truncated": .bool(sessions.count > listed.count)], noStore: true)
    }

    private func kick(_ request: Request, _ context: GatewayRequestContext) async throws -> Response {
        var request = request
        let raw: ByteBuffer
        do {
            raw = try await request.collectBody(upTo: 4096)
        } catch {
            throw GatewayError(.tooLarge, "request body larger than 4096 bytes")
        }
        let value: JSONValue
        do {
            value = try raw.withUnsafeReadableBytes { bytes throws(JSONParser.Error) in try JSONParser.parse(bytes) }
        } catch {
            throw GatewayError.badFrame(error.description)
        }
        guard let user = value["user"]?.stringValue, Address.isValidID(user) else {
            throw GatewayError.badFrame("body must be {\"user\": \"<user id>\"}")
        }
        let sessions = gateway.hub.sessions(of: user)
        for session in sessions {
            // Long-poll sessions are removed at once; WebSocket ones get a close frame.
            session.connection.close(code: Self.kickCloseCode, reason: "closed by an operator")
        }
        context.logger.info("sessions kicked", metadata: ["gateway.user": "\(user)", "gateway.sessions": "\(sessions.count)"])
        return HTTPReply.json(["user": .string(user), "closed": .int(sessions.count)], noStore: true)
    }
}

/// `Authorization: Bearer <admin token>`, compared in constant time.
struct AdminTokenMiddleware<Context: RequestContext>: RouterMiddleware {
    let token: Secret

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let given = request.bearerToken, Self.constantTimeEqual(given, token.value) else {
            return HTTPReply.error(.unauthorized("admin token required"))
        }
        return try await next(request, context)
    }

    static func constantTimeEqual(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8)
        let y = Array(b.utf8)
        var difference = UInt8(x.count == y.count ? 0 : 1)
        for i in 0..<max(x.count, y.count) {
            difference |= (i < x.count ? x[i] : 0) ^ (i < y.count ? y[i] : 0)
        }
        return difference == 0
    }
}
