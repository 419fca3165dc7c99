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
        gateway.stats.live.websocketConnections.wrappingIncrement(ordering: .relaxed)
    }

    deinit {
        gateway.stats.live.websocketConnections.wrappingDecrement(ordering: .relaxed)
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

    fileprivate func write(_ frame: ByteBuffer) -> Bool {
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
        handler.value.writeText(frame)
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
                hello = try await gateway.hello(for: session, ref: ref)
            } catch {
                // No session without its `inbox_seq`: the client reconnects (1001) and asks again.
                gateway.close(session)
                _ = write(ServerFrame.error(error, ref: ref))
                close(code: .goingAway, reason: error.message)
                return false
            }
            _ = write(hello)
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
            // A node at capacity is "try again later" (1013), as RELIABILITY.md's storm row says.
            let code: CloseCode = error.code == .rateLimited ? .policy : error.code == .unavailable ? .tryAgainLater : .unauthorized
            close(code: code, reason: error.message)
            return false
        }
    }

    /// Called by the handler when the channel is gone (idempotent). The session is let go of
    /// here: it holds this connection (`Session.connection`), so keeping it would keep both.
    func closed(by handler: WebSocketSessionHandler) {
        closed.store(true, ordering: .relaxed)
        let session = inbound.withLock { state -> Session? in
            state.closed = true
            state.queue = []
            state.head = 0
            state.preHello = nil
            defer { state.session = nil }
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

    /// Takes the queued frames one at a time, each parsed once. `send`s are pipelined (see
    /// `SendWindow`); any other frame, and any error, is answered after the sends before it.
    private func drain() async {
        var window = SendWindow()
        while true {
            guard let (text, session, resume) = next(finishing: window.isEmpty) else {
                // Nothing queued: the busy period ended, or sends still wait for their commit.
                if window.isEmpty { return }
                await window.finishOldest(self)
                continue
            }
            if resume {
                let handler = self.handler
                channel.eventLoop.execute { handler.value.resumeReading() }
            }
            gateway.stats.framesIn.wrappingIncrement(ordering: .relaxed)
            let parsed = ClientFrame.parse(text)
            guard let session else {
                await handleUnauthenticated(parsed)
                continue
            }
            session.lastActiveAt.store(gateway.clock.nowMillis(), ordering: .relaxed)
            if case .success(let frame) = parsed, frame.kind == .send {
                do {
                    let ackSink: @Sendable (ByteBuffer) -> Void = { [self] in _ = write($0) }
                    if let pending = try await gateway.beginSend(frame, principal: session.principal, reply: { _ = write($0) }, ackSink: ackSink) {
                        await window.add(pending, self)
                    } else {
                        count(error: nil)
                    }
                } catch {
                    await window.finishAll(self)
                    count(error: gateway.refuse(frame, with: error, principal: session.principal) { _ = write($0) })
                }
                continue
            }
            await window.finishAll(self)
            switch parsed {
            case .failure(let error):
                count(error: gateway.refuse(unparsed: error, principal: session.principal) { _ = write($0) })
            case .success(let frame) where frame.kind == .auth:
                // `auth` on an open session refreshes the token.
                await refresh(frame, session: session)
            case .success(let frame):
                count(error: await gateway.handle(frame, principal: session.principal) { _ = write($0) })
            }
        }
    }

    /// A session's sends waiting for their commit, oldest first, answered in this order; at
    /// most `maxSendsInFlight` at once.
    private struct SendWindow {
        private var pending: [Gateway.PendingAck] = []
        private var oldest = 0

        var isEmpty: Bool { oldest == pending.count }

        mutating func add(_ ack: Gateway.PendingAck, _ connection: WebSocketConnection) async {
            pending.append(ack)
            if pending.count - oldest >= WebSocketConnection.maxSendsInFlight { await finishOldest(connection) }
        }

        /// Waits for the oldest send's commit (and answers it, unless the committer did).
        mutating func finishOldest(_ connection: WebSocketConnection) async {
            guard !isEmpty else { return }
            let error = await pending[oldest].complete { _ = connection.write($0) }
            connection.count(error: error)
            oldest += 1
            if isEmpty {
                pending.removeAll(keepingCapacity: true)
                oldest = 0
            }
        }

        mutating func finishAll(_ connection: WebSocketConnection) async {
            while !isEmpty { await finishOldest(connection) }
        }
    }

    private func handleUnauthenticated(_ parsed: Result<ClientFrame, FrameError>) async {
        let frame: ClientFrame
        switch parsed {
        case .failure(let error):
            _ = write(ServerFrame.error(.unauthorized("authenticate first: send an 'auth' frame"), ref: error.ref))
            close(code: .unauthorized, reason: "unauthorized")
            return
        case .success(let parsed):
            frame = parsed
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

    /// Counts bad and rate-limited frames: repeated ones close the session (4000, 1008).
    fileprivate func count(error: GatewayError?) {
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

    private func refresh(_ frame: ClientFrame, session: Session) async {
        do {
            let identity = try await gateway.authenticate(token: try frame.authRequest().token)
            guard identity.user == session.user else {
                throw GatewayError.forbidden("a session cannot change its user")
            }
            session.tokenExpiresAt.store(identity.expiresAt ?? .max, ordering: .relaxed)
            _ = write(try await gateway.hello(for: session, ref: frame.ref))
            let handler = self.handler
            let expiresAt = identity.expiresAt
            channel.eventLoop.execute { handler.value.authenticated(expiresAt: expiresAt) }
        } catch {
            _ = write(ServerFrame.error(GatewayError.from(error), ref: frame.ref))
        }
    }

    /// Sends an error and closes (auth timeout, token expiry).
    func fail(_ error: GatewayError, code: CloseCode) {
        _ = write(ServerFrame.error(error, ref: nil))
        close(code: code, reason: error.message)
    }
}
