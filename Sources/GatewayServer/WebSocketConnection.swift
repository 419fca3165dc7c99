import Atomics
import GatewayCore
import Logging
import NIOCore
import Synchronization

/// One WebSocket client: the `SessionConnection` the hub delivers to, and the serial queue that
/// feeds its frames through the gateway in order.
///
/// Idle connections cost no task: a task exists only while the connection has frames waiting,
/// and ends when the queue is empty. Frames cross to the event loop for writing; the number in
/// transit plus those the socket could not yet take is bounded by `limits.outbound_queue`.
final class WebSocketConnection: SessionConnection, Sendable {
    struct Inbound {
        var queue: [ByteBuffer] = []
        var head = 0
        var processing = false
        var session: Session?
        /// Frames sent before `hello` went out; nil once it has.
        var preHello: [ByteBuffer]? = []
        var badFrames = 0
        /// `rate_limited` answers since the last frame that went through.
        var rateLimited = 0
        var closed = false
    }

    let gateway: Gateway
    let channel: any Channel
    let handler: NIOLoopBound<WebSocketSessionHandler>
    let remoteAddress: String?
    let logger: Logger
    /// Guards the inbound queue, the session and the pre-hello buffer.
    private let inbound = Mutex(Inbound())
    /// Frames on their way to the event loop.
    private let inTransit = ManagedAtomic<Int>(0)
    private let ready = ManagedAtomic<Bool>(false)
    private let closed = ManagedAtomic<Bool>(false)

    static let maxBadFrames = 10
    /// A client still sending after this many `rate_limited` answers in a row is closed (1008).
    static let maxRateLimited = 20

    init(gateway: Gateway, channel: any Channel, handler: NIOLoopBound<WebSocketSessionHandler>, remoteAddress: String?, logger: Logger) {
        self.gateway = gateway
        self.channel = channel
        self.handler = handler
        self.remoteAddress = remoteAddress
        self.logger = logger
    }

    var session: Session? { inbound.withLock { $0.session } }

    // MARK: SessionConnection

    func send(_ frame: ByteBuffer) -> Bool {
        if closed.load(ordering: .relaxed) { return true }
        if !ready.load(ordering: .acquiring) {
            let buffered = inbound.withLock { state -> Bool in
                guard state.preHello != nil else { return false }
                state.preHello!.append(frame)
                return true
            }
            if buffered { return true }
        }
        return write(frame)
    }

    private func write(_ frame: ByteBuffer) -> Bool {
        let transit = inTransit.wrappingIncrementThenLoad(ordering: .relaxed)
        if transit > gateway.limits.outboundQueue {
            inTransit.wrappingDecrement(ordering: .relaxed)
            gateway.stats.slowConsumers.wrappingIncrement(ordering: .relaxed)
            return false
        }
        gateway.stats.framesOut.wrappingIncrement(ordering: .relaxed)
        let handler = self.handler
        let inTransit = self.inTransit
        if channel.eventLoop.inEventLoop {
            inTransit.wrappingDecrement(ordering: .relaxed)
            handler.value.writeText(frame)
        } else {
            channel.eventLoop.execute {
                inTransit.wrappingDecrement(ordering: .relaxed)
                handler.value.writeText(frame)
            }
        }
        return true
    }

    func close(code: CloseCode, reason: String) {
        guard !closed.exchange(true, ordering: .relaxed) else { return }
        let handler = self.handler
        channel.eventLoop.execute { handler.value.close(code: code, reason: reason) }
    }

    // MARK: Session lifecycle

    /// Opens the session and sends `hello` before anything else.
    func start(identity: Identity, device: String?, ref: String?) async -> Bool {
        do {
            let session = try gateway.open(identity: identity, device: device, transport: .websocket, remoteAddress: remoteAddress, connection: self)
            inbound.withLock { $0.session = session }
            let hello = await gateway.hello(for: session)
            _ = write(withRef(hello, ref: ref))
            let early = inbound.withLock { state -> [ByteBuffer] in
                defer { state.preHello = nil }
                return state.preHello ?? []
            }
            ready.store(true, ordering: .releasing)
            for frame in early { _ = write(frame) }
            let handler = self.handler
            let expiresAt = identity.expiresAt
            channel.eventLoop.execute { handler.value.authenticated(expiresAt: expiresAt) }
            logger.debug("session opened", metadata: ["gateway.session": "\(session.id)", "gateway.transport": "websocket"])
            return true
        } catch {
            _ = write(ServerFrame.error(error, ref: ref))
            close(code: error.code == .rateLimited ? .policy : .unauthorized, reason: error.message)
            return false
        }
    }

    /// Called by the handler when the channel is gone.
    func closed(by handler: WebSocketSessionHandler) {
        closed.store(true, ordering: .relaxed)
        let session = inbound.withLock { state -> Session? in
            state.closed = true
            state.queue = []
            state.head = 0
            return state.session
        }
        if let session {
            gateway.close(session)
            logger.debug("session closed", metadata: ["gateway.session": "\(session.id)"])
        }
    }

    // MARK: Inbound

    /// Queues a complete text message. Returns whether the queue is now full (the handler stops
    /// reading until it drains).
    func enqueue(_ text: ByteBuffer) -> Bool {
        let (start, full): (Bool, Bool) = inbound.withLock { state in
            guard !state.closed else { return (false, false) }
            state.queue.append(text)
            let full = state.queue.count - state.head >= gateway.limits.inboundQueue
            if state.processing { return (false, full) }
            state.processing = true
            return (true, full)
        }
        if start {
            // A task per busy period of this connection, ended when its queue is empty.
            Task { await self.drain() }
        }
        return full
    }

    private func next() -> (ByteBuffer, Session?, resume: Bool)? {
        inbound.withLock { state in
            guard !state.closed, state.head < state.queue.count else {
                state.processing = false
                state.queue.removeAll(keepingCapacity: state.queue.capacity <= 64)
                state.head = 0
                return nil
            }
            let frame = state.queue[state.head]
            let wasFull = state.queue.count - state.head >= gateway.limits.inboundQueue
            state.head += 1
            if state.head >= 64, state.head * 2 >= state.queue.count {
                state.queue.removeFirst(state.head)
                state.head = 0
            }
            return (frame, state.session, wasFull)
        }
    }

    private func drain() async {
        while let (text, session, resume) = next() {
            if resume {
                let handler = self.handler
                channel.eventLoop.execute { handler.value.resumeReading() }
            }
            if let session {
                await handleAuthenticated(text, session: session)
            } else {
                await handleUnauthenticated(text)
            }
        }
    }

    private func handleUnauthenticated(_ text: ByteBuffer) async {
        gateway.stats.framesIn.wrappingIncrement(ordering: .relaxed)
        let frame: ClientFrame
        do {
            frame = try text.withUnsafeReadableBytes { bytes throws(FrameError) in try ClientFrame.parse(bytes) }
        } catch {
            _ = write(ServerFrame.error(.unauthorized("authenticate first: send an 'auth' frame"), ref: error.ref))
            close(code: .unauthorized, reason: "unauthorized")
            return
        }
        guard frame.kind == .auth else {
            _ = write(ServerFrame.error(.unauthorized("authenticate first: send an 'auth' frame"), ref: frame.ref))
            close(code: .unauthorized, reason: "unauthorized")
            return
        }
        do {
            let request = try frame.authRequest()
            let identity = try await gateway.authenticate(token: request.token)
            _ = await start(identity: identity, device: request.device, ref: frame.ref)
        } catch {
            _ = write(ServerFrame.error(GatewayError.from(error), ref: frame.ref))
            close(code: .unauthorized, reason: "unauthorized")
        }
    }

    private func handleAuthenticated(_ text: ByteBuffer, session: Session) async {
        session.lastActiveAt.store(gateway.clock.nowMillis(), ordering: .relaxed)
        // `auth` on an open session refreshes the token; everything else goes to the gateway.
        if Self.isAuthFrame(text) {
            await refresh(text, session: session)
            return
        }
        let error = await gateway.handle(text: text, principal: session.principal) { reply in
            _ = self.write(reply)
        }
        switch error?.code {
        case .badFrame?:
            let count = inbound.withLock { state -> Int in
                state.badFrames += 1
                return state.badFrames
            }
            if count >= Self.maxBadFrames { close(code: .badFrame, reason: "too many bad frames") }
        case .rateLimited?:
            let count = inbound.withLock { state -> Int in
                state.rateLimited += 1
                return state.rateLimited
            }
            if count >= Self.maxRateLimited { close(code: .policy, reason: "rate limit exceeded repeatedly") }
        case nil:
            inbound.withLock { $0.rateLimited = 0 }
        default:
            break
        }
    }

    private func refresh(_ text: ByteBuffer, session: Session) async {
        gateway.stats.framesIn.wrappingIncrement(ordering: .relaxed)
        var ref: String?
        do {
            let frame = try text.withUnsafeReadableBytes { bytes throws(FrameError) in try ClientFrame.parse(bytes) }
            ref = frame.ref
            let identity = try await gateway.authenticate(token: try frame.authRequest().token)
            guard identity.user == session.user else {
                throw GatewayError.forbidden("a session cannot change its user")
            }
            session.tokenExpiresAt.store(identity.expiresAt ?? .max, ordering: .relaxed)
            _ = write(withRef(await gateway.hello(for: session), ref: ref))
            let handler = self.handler
            let expiresAt = identity.expiresAt
            channel.eventLoop.execute { handler.value.authenticated(expiresAt: expiresAt) }
        } catch let error as FrameError {
            _ = write(ServerFrame.error(error.error, ref: error.ref))
        } catch {
            _ = write(ServerFrame.error(GatewayError.from(error), ref: ref))
        }
    }

    /// Whether a frame's text is an `auth` frame, without a full parse (cheap check first).
    static func isAuthFrame(_ text: ByteBuffer) -> Bool {
        let needle = Array("\"auth\"".utf8)
        let found = text.withUnsafeReadableBytes { bytes -> Bool in
            guard bytes.count >= needle.count else { return false }
            var i = 0
            while i + needle.count <= bytes.count {
                if bytes[i] == needle[0] {
                    var match = true
                    for j in 1..<needle.count where bytes[i + j] != needle[j] {
                        match = false
                        break
                    }
                    if match { return true }
                }
                i += 1
            }
            return false
        }
        guard found else { return false }
        let kind = text.withUnsafeReadableBytes { bytes in try? ClientFrame.parse(bytes).kind }
        return kind == .auth
    }

    private func withRef(_ frame: ByteBuffer, ref: String?) -> ByteBuffer {
        guard let ref else { return frame }
        // Re-encode with `ref` echoed: hello is rare, so the simple path is fine.
        guard let text = frame.getString(at: frame.readerIndex, length: frame.readableBytes),
            case .object(var object)? = try? JSONParser.parse(text)
        else { return frame }
        object.members.insert((key: "ref", value: .string(ref)), at: 1)
        return ServerFrame.object(object)
    }

    /// Sends an error and closes (auth timeout, token expiry).
    func fail(_ error: GatewayError, code: CloseCode) {
        _ = write(ServerFrame.error(error, ref: nil))
        close(code: code, reason: error.message)
    }
}
