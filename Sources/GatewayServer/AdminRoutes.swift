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

/// The admin port's routes (PROTOCOL.md section 7).
struct AdminRoutes: Sendable {
    let gateway: Gateway
    let longPoll: LongPollRegistry
    let readiness: Readiness
    let token: Secret

    func register(on router: Router<GatewayRequestContext>) {
        router.get("/healthz") { _, _ in Response(status: .ok, headers: [.contentType: "text/plain"], body: .init(byteBuffer: ByteBuffer(string: "ok"))) }
        router.get("/readyz") { _, _ in
            self.readiness.isReady
                ? Response(status: .ok, headers: [.contentType: "text/plain"], body: .init(byteBuffer: ByteBuffer(string: "ready")))
                : Response(status: .serviceUnavailable, headers: [.contentType: "text/plain"], body: .init(byteBuffer: ByteBuffer(string: "not ready")))
        }
        let admin = router.group("/admin").add(middleware: AdminTokenMiddleware(token: token))
        admin.get("stats") { _, _ in HTTPReply.json(await self.stats(), noStore: true) }
    }

    func stats() async -> JSONValue {
        let store = (try? await gateway.stores.messages.statistics()) ?? StoreStatistics(messages: 0, inboxEntries: 0, bytes: 0)
        let stages: [JSONValue] = gateway.pipeline.entries.map { entry in
            [
                "name": .string(entry.name), "kind": .string(entry.kind),
                "processed": .int(entry.stats.processed.load(ordering: .relaxed)),
                "rejected": .int(entry.stats.rejected.load(ordering: .relaxed)),
                "errors": .int(entry.stats.errors.load(ordering: .relaxed)),
                "p50_us": .int(Int64(entry.stats.latency.percentile(0.50))),
                "p99_us": .int(Int64(entry.stats.latency.percentile(0.99))),
            ]
        }
        let s = gateway.stats
        return [
            "uptime_s": .int((gateway.clock.nowMillis() - s.startedAt) / 1000),
            "connections": ["websocket": .int(gateway.hub.count(of: .websocket)), "longpoll": .int(gateway.hub.count(of: .longpoll))],
            "users_online": .int(gateway.hub.onlineUserCount),
            "frames_in": .int(s.framesIn.load(ordering: .relaxed)),
            "frames_out": .int(s.framesOut.load(ordering: .relaxed)),
            "messages_accepted": .int(s.messagesAccepted.load(ordering: .relaxed)),
            "messages_rejected": .int(s.messagesRejected.load(ordering: .relaxed)),
            "stages": .array(stages),
            "store": ["messages": .int(store.messages), "inbox_entries": .int(store.inboxEntries), "bytes": .int(store.bytes)],
            "push": ["sent": 0, "failed": 0, "queued": 0],
            "media": ["uploads": 0, "bytes_in": 0, "bytes_stored": 0],
        ]
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
