import Logging
import NIOCore
import Synchronization

/// Sessions: authentication, opening and closing, and the `hello` a session starts with.
extension Gateway {
    /// Verifies a token with the pipeline's auth stage.
    public func authenticate(token: String) async throws(GatewayError) -> Identity {
        guard let authenticator = pipeline.authenticator else { throw .unauthorized("no auth stage configured") }
        return try await authenticator.authenticate(token: token)
    }

    /// A new session id, unique on this node.
    public func makeSessionID() -> String {
        let n = sessionCounter.withLock { counter -> UInt64 in
            counter &+= 1
            return counter
        }
        return "\(node.id)-\(stats.startedAt % 1_000_000_000)-\(n)"
    }

    /// Registers a live session; refuses past the caps. `sessionID`: the id of a session moved
    /// here from another node (a re-homed long-poll session); nil: a new one.
    public func open(
        identity: Identity, device: String?, transport: TransportKind, remoteAddress: String?, connection: any SessionConnection,
        sessionID: String? = nil
    ) throws(GatewayError) -> Session {
        let sessionID = sessionID ?? makeSessionID()
        let principal = Principal(user: identity.user, device: device ?? sessionID, session: sessionID, transport: transport, remoteAddress: remoteAddress)
        let session = Session(
            principal: principal, connection: connection, openedAt: clock.nowMillis(), tokenExpiresAt: identity.expiresAt, live: stats.live)
        try hub.register(session)
        // WebSocket sessions are logged by their connection, which also knows the close code.
        if transport != .websocket {
            logger.debug("session opened", metadata: ["gateway.session": "\(sessionID)", "gateway.transport": "\(transport.rawValue)"])
        }
        return session
    }

    public func close(_ session: Session) {
        presence.sessionClosed(session)
        hub.unregister(session)
        typingTimes.withLock { _ = $0.removeValue(forKey: session.id) }
        if session.principal.transport != .websocket {
            logger.debug("session closed", metadata: ["gateway.session": "\(session.id)", "gateway.transport": "\(session.principal.transport.rawValue)"])
        }
    }

    /// The `hello` frame for a new session (with `ref` when it answers an `auth` frame).
    /// Throws `unavailable` when the store cannot tell the inbox head: a `hello` with a wrong
    /// `inbox_seq` (say 0) would make a client think its inbox went back.
    public func hello(for session: Session, ref: String? = nil) async throws(GatewayError) -> ByteBuffer {
        let head: Int64
        do {
            head = try await stores.messages.inboxHead(user: session.user)
        } catch {
            logger.warning("hello without the inbox head: the store failed", metadata: ["error": "\(error)", "gateway.session": "\(session.id)"])
            throw GatewayError.unavailable("the store is unavailable; reconnect shortly", retryAfterMs: 1000)
        }
        return ServerFrame.hello(
            user: session.user, device: session.principal.device, session: session.id, node: node.id,
            heartbeatMs: presenceSettings.heartbeatMs, maxFrameBytes: limits.maxFrameBytes, inboxSeq: head, ref: ref)
    }

    /// The live session a principal speaks for (nil for the stateless HTTP API).
    func session(of principal: Principal) -> Session? {
        hub.sessions(of: principal.user).first { $0.id == principal.session }
    }
}
