import GatewayConfig
import GatewayCore
import Logging
import NIOCore

/// A whole `Gateway` (pipeline, committer, hub, presence) on an `InMemoryStore` and a
/// `TestClock`, with no socket: the in-memory transport for stage and gateway tests. A test
/// connects users (`connect`), sends frames as a client would (`InMemoryConnection.send`) and
/// reads what the gateway sent back, replies and deliveries alike, in order.
///
/// Its pipeline needs an authenticator like any other; `InMemoryGateway.trustingAuth` (kind
/// `test.trusting_auth`: the token is the user) serves when the test is not about tokens.
///
///     let registry = try StageRegistry([InMemoryGateway.trustingAuth, IDStage.factory, PersistStage.factory, FanoutStage.factory])
///     let gateway = try InMemoryGateway(yaml: config, registry: registry)
///     let alice = try await gateway.connect("alice"), bob = try await gateway.connect("bob")
///     await alice.send(["type": "send", "to": ["user": "bob"], "body": "hi", "client_msg_id": "m1"])
///     #expect(try await alice.next(ofType: "ack")["seq"] == 1)
///     #expect(try await bob.next(ofType: "message")["body"] == "hi")
///     await gateway.stop()
public final class InMemoryGateway: Sendable {
    public let gateway: Gateway
    public let store: InMemoryStore
    public let clock: TestClock

    /// Builds the gateway of `yaml` (a whole config file; its `store:` is not used) with the
    /// stages of `registry`.
    public init(yaml: String, registry: StageRegistry, store: InMemoryStore = InMemoryStore(), clock: TestClock = TestClock()) throws {
        let configuration = try ConfigLoader.load(text: yaml, file: "config.yaml", environment: [:])
        let logger = Logger(label: "in-memory-gateway", factory: { _ in SwiftLogNoOpLogHandler() })
        let stores = Stores(store)
        let hub = SessionHub(maxSessionsPerUser: configuration.limits.maxSessionsPerUser)
        let pipeline = try Pipeline.build(
            configuration.pipeline, registry: registry, logger: logger, clock: clock, stores: stores, presence: hub, node: configuration.node)
        self.gateway = Gateway(configuration: configuration, stores: stores, hub: hub, pipeline: pipeline, clock: clock, logger: logger)
        self.store = store
        self.clock = clock
    }

    /// Opens a session for `user` as an authenticated transport would, and queues its `hello`.
    public func connect(_ user: String, device: String? = nil) async throws -> InMemoryConnection {
        let connection = InMemoryConnection(gateway: gateway)
        let session = try gateway.open(
            identity: Identity(user: user, expiresAt: nil), device: device, transport: .websocket, remoteAddress: "127.0.0.1", connection: connection)
        connection.attach(session)
        _ = connection.send(try await gateway.hello(for: session))
        return connection
    }

    /// Waits for queued commits, then stops presence; close the connections first.
    public func stop() async {
        await gateway.drain()
    }

    /// A stage of kind `test.trusting_auth` that provides `.authenticator` and takes any
    /// non-empty token as the user's name: for tests about something else than tokens.
    public static let trustingAuth = StageFactory(kind: "test.trusting_auth", settings: NoSettings.self) { _, _ in TrustingAuthenticator() }
}

/// The authenticator of `InMemoryGateway.trustingAuth`.
struct TrustingAuthenticator: Stage, Authenticator {
    func process(_ envelope: inout Envelope, context: StageContext) async throws -> StageOutcome { .continue }

    func authenticate(token: String) async throws(GatewayError) -> Identity {
        guard !token.isEmpty else { throw .unauthorized("empty token") }
        return Identity(user: token, expiresAt: nil)
    }
}

/// One client of an `InMemoryGateway`: the `SessionConnection` its session writes to.
public final class InMemoryConnection: SessionConnection, Sendable {
    private let gateway: Gateway
    private let session = Observed<Session?>(nil)
    /// Frames the gateway sent, in order, not yet taken by `next`; and the close, once closed.
    private let received = Observed((frames: [JSONObject](), closed: CloseCode?.none))

    init(gateway: Gateway) {
        self.gateway = gateway
    }

    func attach(_ session: Session) {
        self.session.update { $0 = session }
    }

    /// Handles `frame` as the gateway handles one from a socket: parsed, run through the
    /// pipeline, its direct reply queued like any other frame. Returns the error the client was
    /// answered with, if any.
    @discardableResult
    public func send(_ frame: JSONObject) async -> GatewayError? {
        guard let session = session.value else { return .unauthorized("not connected") }
        let reply: (ByteBuffer) -> Void = { [self] in _ = self.send($0) }
        do {
            return await gateway.handle(try ClientFrame.parse(.object(frame)), principal: session.principal, reply: reply)
        } catch {
            return gateway.refuse(unparsed: error, principal: session.principal, reply: reply)
        }
    }

    /// The next frame of `type` the gateway sent (earlier frames of other types are dropped);
    /// throws when none comes within `timeout`.
    public func next(ofType type: String, timeout: Duration = .seconds(10)) async throws -> JSONObject {
        let arrived = await received.wait(timeout: timeout) { state in state.frames.contains { $0["type"]?.stringValue == type } }
        guard arrived else { throw InMemoryTransportError(description: "no \(type) frame within \(timeout)") }
        var found: JSONObject?
        received.update { state in
            guard let index = state.frames.firstIndex(where: { $0["type"]?.stringValue == type }) else { return }
            found = state.frames[index]
            state.frames.removeFirst(index + 1)
        }
        guard let found else { throw InMemoryTransportError(description: "no \(type) frame") }
        return found
    }

    /// Every frame received and not yet taken, in order (and takes them).
    public func drain() -> [JSONObject] {
        var frames: [JSONObject] = []
        received.update { swap(&frames, &$0.frames) }
        return frames
    }

    /// The close code, once the gateway closed the session.
    public var closeCode: CloseCode? { received.value.closed }

    /// Ends the session as a transport does when its client goes away.
    public func disconnect() {
        guard let session = session.value else { return }
        self.session.update { $0 = nil }
        gateway.close(session)
    }

    // MARK: SessionConnection

    public func send(_ frame: ByteBuffer) -> Bool {
        let object = frame.withUnsafeReadableBytes { bytes -> JSONObject? in (try? JSONParser.parse(bytes))?.objectValue }
        received.update { $0.frames.append(object ?? ["type": "unparsable"]) }
        return true
    }

    public func close(code: CloseCode, reason: String) {
        received.update { $0.closed = code }
        disconnect()
    }
}

public struct InMemoryTransportError: Error, CustomStringConvertible, Sendable {
    public let description: String
}
