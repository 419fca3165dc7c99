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
    /// Where frames for the client wait for the event loop.
    let outbox: LoopOutbox
    /// Guards the inbound queue, the session and the pre-hello buffer.
    private let inbound = Mutex(Inbound())
    /// Frames on their way to the event loop. (`Atomic`s are stored inline: no heap object each.)
    private let inTransit = Atomic<Int>(0)
    private let ready = Atomic<Bool>(false)
    private let closed = Atomic<Bool>(false)
    /// This connection's place in `TokenDeadlines` (-1: none); changed only under its lock.
    let deadlineSlot = Atomic<Int>(-1)

    static let maxBadFrames = 10
    /// A client still sending after this many `rate_limited` answers in a row is closed (1008).
    static let maxRateLimited = 20

    init(gateway: Gateway, channel: any Channel, handler: NIOLoopBound<WebSocketSessionHandler>, remoteAddress: String?, logger: Logger) {
        self.gateway = gateway
        self.channel = channel
        self.handler = handler
        self.remoteAddress = remoteAddress
        self.logger = logger
        self.outbox = LoopOutbox.of(channel.eventLoop)
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
        let transit = inTransit.wrappingAdd(1, ordering: .relaxed).newValue
        if transit > gateway.limits.outboundQueue {
            inTransit.wrappingSubtract(1, ordering: .relaxed)
            gateway.stats.slowConsumers.wrappingIncrement(ordering: .relaxed)
            return false
        }
        gateway.stats.framesOut.wrappingIncrement(ordering: .relaxed)
        outbox.post(frame, to: self)
        return true
    }

    /// Writes a frame `LoopOutbox` brought to the event loop (flushed by `flushOnLoop`).
    func writeOnLoop(_ frame: ByteBuffer) {
        inTransit.wrappingSubtract(1, ordering: .relaxed)
        handler.value.writeText(frame, flush: false)
    }

    /// Flushes what `writeOnLoop` wrote (once per drain, however many frames it wrote).
    func flushOnLoop() {
        handler.value.flushIfNeeded()
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
            let hello: ByteBuffer
            do {
                hello = try await gateway.hello(for: session)
            } catch {
                // No session without its `inbox_seq`: the client reconnects (1001) and asks again.
                gateway.close(session)
                _ = write(ServerFrame.error(error, ref: ref))
                close(code: .goingAway, reason: error.message)
                return false
            }
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

    /// The next queued message. When the queue is empty it returns nil, and ends the busy
    /// period (so a new message starts a new task) only if `finishing`.
    private func next(finishing: Bool) -> (ByteBuffer, Session?, resume: Bool)? {
        inbound.withLock { state in
            guard !state.closed, state.head < state.queue.count else {
                guard finishing || state.closed else { return nil }
                state.processing = false
                // Storage released: an idle connection holds no queue (a busy period costs a
                // task anyway; one allocation more is noise next to it).
                state.queue = []
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

    /// Sends of one session that may wait for the store at once: the next ones pass the stages
    /// while these commit (group commit fills up faster), and acks still go out in order.
    static let maxSendsInFlight = 32

    private func drain() async {
        // Queued sends waiting for their commit, oldest first; answered in this order.
        var inFlight: [Gateway.PendingAck] = []
        var oldest = 0
        while true {
            guard let (text, session, resume) = next(finishing: oldest == inFlight.count) else {
                if oldest == inFlight.count { return }
                await finish(inFlight[oldest])
                oldest += 1
                continue
            }
            if resume {
                let handler = self.handler
                channel.eventLoop.execute { handler.value.resumeReading() }
            }
            guard let session else {
                await handleUnauthenticated(text)
                continue
            }
            session.lastActiveAt.store(gateway.clock.nowMillis(), ordering: .relaxed)
            let started = await beginSend(text, session: session)
            if case .failed(let error, let ref) = started {
                // Answered after the sends before it, like every reply.
                while oldest < inFlight.count {
                    await finish(inFlight[oldest])
                    oldest += 1
                }
                inFlight.removeAll(keepingCapacity: true)
                oldest = 0
                // Code and message only: never the frame's body.
                logger.debug(
                    "frame rejected",
                    metadata: [
                        "gateway.session": "\(session.id)", "gateway.frame": "send", "gateway.code": "\(error.code.rawValue)",
                        "gateway.reason": "\(error.message)",
                    ])
                _ = write(ServerFrame.error(error, ref: ref))
                count(error: error)
                continue
            }
            if case .answered = started { continue }
            if case .pending(let pending) = started {
                inFlight.append(pending)
                if inFlight.count - oldest >= Self.maxSendsInFlight {
                    await finish(inFlight[oldest])
                    oldest += 1
                }
                if oldest == inFlight.count {
                    inFlight.removeAll(keepingCapacity: true)
                    oldest = 0
                }
                continue
            }
            // Any other frame is answered after the sends before it.
            while oldest < inFlight.count {
                await finish(inFlight[oldest])
                oldest += 1
            }
            inFlight.removeAll(keepingCapacity: true)
            oldest = 0
            await handleAuthenticated(text, session: session)
        }
    }

    enum SendStart {
        /// Not a `send` frame: it takes the ordinary path.
        case notSend
        /// Queued for the store.
        case pending(Gateway.PendingAck)
        /// Answered already (a stage's reply, or an ack without a store).
        case answered
        /// Refused before the store: the error to answer with.
        case failed(GatewayError, ref: String?)
    }

    /// Starts a `send` frame.
    private func beginSend(_ text: ByteBuffer, session: Session) async -> SendStart {
        // Only frames that say "send" are parsed here; the rest take the ordinary path.
        guard Self.contains(text, Self.sendNeedle) else { return .notSend }
        let frame: ClientFrame
        do {
            frame = try text.withUnsafeReadableBytes { bytes throws(FrameError) in try ClientFrame.parse(bytes) }
        } catch {
            return .notSend
        }
        guard frame.kind == .send else { return .notSend }
        gateway.stats.framesIn.wrappingIncrement(ordering: .relaxed)
        do {
            let ackSink: @Sendable (ByteBuffer) -> Void = { [self] in _ = write($0) }
            guard let pending = try await gateway.beginSend(frame, principal: session.principal, reply: { _ = self.write($0) }, ackSink: ackSink) else {
                count(error: nil)
                return .answered
            }
            return .pending(pending)
        } catch {
            return .failed(GatewayError.from(error), ref: frame.ref)
        }
    }

    private func finish(_ pending: Gateway.PendingAck) async {
        let error = await pending.complete { _ = self.write($0) }
        count(error: error)
    }

    static let sendNeedle = Array("\"send\"".utf8)

    static func contains(_ text: ByteBuffer, _ needle: [UInt8]) -> Bool {
        text.withUnsafeReadableBytes { bytes -> Bool in
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
        // `auth` on an open session refreshes the token; everything else goes to the gateway.
        if Self.isAuthFrame(text) {
            await refresh(text, session: session)
            return
        }
        let error = await gateway.handle(text: text, principal: session.principal) { reply in
            _ = self.write(reply)
        }
        count(error: error)
    }

    /// Counts bad and rate-limited frames: repeated ones close the session (4000, 1008).
    private func count(error: GatewayError?) {
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
            _ = write(withRef(try await gateway.hello(for: session), ref: ref))
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
    /// Whether a frame's text is an `auth` frame (a cheap scan first, a parse only if it may be).
    static func isAuthFrame(_ text: ByteBuffer) -> Bool {
        guard contains(text, authNeedle) else { return false }
        return text.withUnsafeReadableBytes { bytes in try? ClientFrame.parse(bytes).kind } == .auth
    }

    static let authNeedle = Array("\"auth\"".utf8)

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
