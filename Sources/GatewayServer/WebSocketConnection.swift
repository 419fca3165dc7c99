import GatewayCore
import Logging
import NIOCore
import Synchronization

/// The door to one WebSocket session from other threads: the `SessionConnection` the hub
/// delivers to, the bound on frames on their way to the socket, and the serial queue that feeds
/// the client's messages through the gateway in order.
///
/// Its channel and everything on the event loop belong to its owner, the connection's
/// `WebSocketSessionHandler`; this object holds only what other threads must reach. A frame
/// sent here is counted until the owner has written it to the socket or dropped it
/// (`written(_:)`): one count, here, over the frames crossing to the loop, those held for
/// `hello`, and those the socket could not take yet. It is held to `outbound_queue` once frames
/// wait for the client (the owner says so, `setWaiting`): then a send past it is refused, and the
/// owner closes the connection when frames it must keep take the count past it (4008). A burst
/// to a client that reads (a batch's acks, a fanout) only crosses to the loop and is written.
///
/// Idle connections cost no task: a task exists only while the connection has messages waiting,
/// and ends when the queue is empty.
final class WebSocketConnection: SessionConnection, Sendable {
    struct Inbound {
        var queue: [ByteBuffer] = []
        var head = 0
        var processing = false
        var session: Session?
        var badFrames = 0
        /// `rate_limited` answers since the last frame that went through.
        var rateLimited = 0
        var closed = false
    }

    let environment: WebSocketEnvironment
    var gateway: Gateway { environment.gateway }
    /// The connection's owner, on the channel's event loop.
    let owner: NIOLoopBound<WebSocketSessionHandler>
    var eventLoop: any EventLoop { owner.eventLoop }
    let remoteAddress: String?
    /// Where frames for the client wait for the event loop.
    let outbox: LoopOutbox
    /// Guards the inbound queue and the session.
    private let inbound = Mutex(Inbound())
    /// Frames sent and not yet written to the socket or dropped: the connection's one outbound
    /// bound. (`Atomic`s are stored inline: no heap object each.)
    private let queued = Atomic<Int>(0)
    /// Whether frames wait for the client (the socket cannot take more, or they are held for
    /// `hello`); set by the owner.
    private let waiting = Atomic<Bool>(false)
    private let closed = Atomic<Bool>(false)
    /// This connection's place in `TokenDeadlines` (-1: none); changed only under its lock.
    let deadlineSlot = Atomic<Int>(-1)

    static let maxBadFrames = 10
    /// A client still sending after this many `rate_limited` answers in a row is closed (1008).
    static let maxRateLimited = 20

    init(environment: WebSocketEnvironment, owner: NIOLoopBound<WebSocketSessionHandler>, remoteAddress: String?) {
        self.environment = environment
        self.owner = owner
        self.remoteAddress = remoteAddress
        self.outbox = environment.outboxes.outbox(for: owner.eventLoop)
        environment.stats.live.websocketConnections.wrappingIncrement(ordering: .relaxed)
    }

    deinit {
        environment.stats.live.websocketConnections.wrappingDecrement(ordering: .relaxed)
    }

    var session: Session? { inbound.withLock { $0.session } }

    /// Frames counted against the bound right now (sent, not yet written or dropped).
    var queuedFrames: Int { queued.load(ordering: .relaxed) }

    // MARK: SessionConnection

    /// A delivery (or a reply): held by the owner until the session's `hello` has gone out.
    func send(_ frame: ByteBuffer) -> Bool {
        post(frame, order: .afterHello)
    }

    /// Counts `frame` and hands it to the loop's outbox. Past the bound while frames wait for
    /// the client, the client is a slow consumer: closed with 4008, and false returned.
    @discardableResult
    func post(_ frame: ByteBuffer, order: LoopOutbox.Order) -> Bool {
        if closed.load(ordering: .relaxed) { return true }
        if queued.wrappingAdd(1, ordering: .relaxed).newValue > environment.outboundQueue, waiting.load(ordering: .relaxed) {
            queued.wrappingSubtract(1, ordering: .relaxed)
            closeAsSlowConsumer()
            return false
        }
        environment.stats.framesOut.wrappingIncrement(ordering: .relaxed)
        outbox.post(frame, order: order, to: self)
        return true
    }

    /// A reply to the client's frame (in order after `hello`, like a delivery).
    fileprivate func reply(_ frame: ByteBuffer) {
        post(frame, order: .afterHello)
    }

    /// Called by the owner, on the loop, for frames `post` counted that are now written to the
    /// socket or dropped (the connection closed).
    func written(_ count: Int) {
        queued.wrappingSubtract(count, ordering: .relaxed)
    }

    /// Called by the owner, on the loop: frames now wait for the client (or no longer do).
    /// Returns whether the count is within `outbound_queue`.
    func setWaiting(_ value: Bool) -> Bool {
        waiting.store(value, ordering: .relaxed)
        return queued.load(ordering: .relaxed) <= environment.outboundQueue
    }

    /// Closes with 4008 (`outbound queue full`), counted once in `slow_consumers`.
    func closeAsSlowConsumer() {
        guard !closed.exchange(true, ordering: .relaxed) else { return }
        environment.stats.slowConsumers.wrappingIncrement(ordering: .relaxed)
        let owner = self.owner
        eventLoop.execute { owner.value.close(code: .slowConsumer, reason: "outbound queue full") }
    }

    func close(code: CloseCode, reason: String) {
        guard !closed.exchange(true, ordering: .relaxed) else { return }
        let owner = self.owner
        eventLoop.execute { owner.value.close(code: code, reason: reason) }
    }

    // MARK: Session lifecycle

    /// Opens the session and sends `hello` before anything else: deliveries that reach the
    /// session meanwhile are held by the owner until `hello` is written (`LoopOutbox.Order`).
    func start(identity: Identity, device: String?, ref: String?) async -> Bool {
        do {
            let session = try gateway.open(
                identity: identity, device: device, transport: .websocket, remoteAddress: remoteAddress, connection: self)
            inbound.withLock { $0.session = session }
            let hello: ByteBuffer
            do {
                hello = try await gateway.hello(for: session, ref: ref)
            } catch {
                // No session without its `inbox_seq`: the client reconnects (1001) and asks again.
                gateway.close(session)
                post(ServerFrame.error(error, ref: ref), order: .now)
                close(code: .goingAway, reason: error.message)
                return false
            }
            post(hello, order: .hello)
            let owner = self.owner
            let expiresAt = identity.expiresAt
            eventLoop.execute { owner.value.authenticated(expiresAt: expiresAt) }
            environment.logger.debug("session opened", metadata: ["gateway.session": "\(session.id)", "gateway.transport": "websocket"])
            return true
        } catch {
            post(ServerFrame.error(error, ref: ref), order: .now)
            // A node at capacity is "try again later" (1013), as RELIABILITY.md's storm row says.
            let code: CloseCode = error.code == .rateLimited ? .policy : error.code == .unavailable ? .tryAgainLater : .unauthorized
            close(code: code, reason: error.message)
            return false
        }
    }

    /// Called by the owner when the channel is gone (idempotent). The session is let go of
    /// here: it holds this connection (`Session.connection`), so keeping it would keep both.
    func ended() {
        closed.store(true, ordering: .relaxed)
        let session = inbound.withLock { state -> Session? in
            state.closed = true
            state.queue = []
            state.head = 0
            defer { state.session = nil }
            return state.session
        }
        if let session {
            gateway.close(session)
            environment.logger.debug("session closed", metadata: ["gateway.session": "\(session.id)"])
        }
    }

    // MARK: Inbound

    /// Queues a complete text message. Returns whether the queue is now full (its owner stops
    /// reading until it drains).
    func enqueue(_ text: ByteBuffer) -> Bool {
        let (start, full): (Bool, Bool) = inbound.withLock { state in
            guard !state.closed else { return (false, false) }
            state.queue.append(text)
            let full = state.queue.count - state.head >= environment.inboundQueue
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
            let wasFull = state.queue.count - state.head >= environment.inboundQueue
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
    /// `PendingSends`); any other frame, and any error, is answered after the sends before it.
    private func drain() async {
        var inFlight = PendingSends()
        while true {
            guard let (text, session, resume) = next(finishing: inFlight.isEmpty) else {
                // Nothing queued: the busy period ended, or sends still wait for their commit.
                if inFlight.isEmpty { return }
                await inFlight.finishOldest(self)
                continue
            }
            if resume {
                let owner = self.owner
                eventLoop.execute { owner.value.resumeReading() }
            }
            environment.stats.framesIn.wrappingIncrement(ordering: .relaxed)
            let parsed = ClientFrame.parse(text)
            guard let session else {
                await handleUnauthenticated(parsed)
                continue
            }
            session.lastActiveAt.store(environment.clock.nowMillis(), ordering: .relaxed)
            if case .success(let frame) = parsed, frame.kind == .send {
                do {
                    let ackSink: @Sendable (ByteBuffer) -> Void = { [self] in reply($0) }
                    if let send = try await gateway.beginSend(frame, principal: session.principal, reply: { reply($0) }, ackSink: ackSink) {
                        await inFlight.add(send, self)
                    } else {
                        count(error: nil)
                    }
                } catch {
                    await inFlight.finishAll(self)
                    count(error: gateway.refuse(frame, with: error, principal: session.principal) { reply($0) })
                }
                continue
            }
            await inFlight.finishAll(self)
            switch parsed {
            case .failure(let error):
                count(error: gateway.refuse(unparsed: error, principal: session.principal) { reply($0) })
            case .success(let frame) where frame.kind == .auth:
                // `auth` on an open session refreshes the token.
                await refresh(frame, session: session)
            case .success(let frame):
                count(error: await gateway.handle(frame, principal: session.principal) { reply($0) })
            }
        }
    }

    /// A session's sends in flight (`PendingSend`), oldest first, answered in this order; at
    /// most `maxSendsInFlight` at once.
    private struct PendingSends {
        private var pending: [PendingSend] = []
        private var oldest = 0

        var isEmpty: Bool { oldest == pending.count }

        mutating func add(_ send: PendingSend, _ connection: WebSocketConnection) async {
            pending.append(send)
            if pending.count - oldest >= WebSocketConnection.maxSendsInFlight { await finishOldest(connection) }
        }

        /// Waits for the oldest send's commit (and answers it, unless the committer did).
        mutating func finishOldest(_ connection: WebSocketConnection) async {
            guard !isEmpty else { return }
            let error = await pending[oldest].complete { connection.reply($0) }
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
            post(ServerFrame.error(.unauthorized("authenticate first: send an 'auth' frame"), ref: error.ref), order: .now)
            close(code: .unauthorized, reason: "unauthorized")
            return
        case .success(let parsed):
            frame = parsed
        }
        guard frame.kind == .auth else {
            post(ServerFrame.error(.unauthorized("authenticate first: send an 'auth' frame"), ref: frame.ref), order: .now)
            close(code: .unauthorized, reason: "unauthorized")
            return
        }
        do {
            let request = try frame.authRequest()
            let identity = try await gateway.authenticate(token: request.token)
            _ = await start(identity: identity, device: request.device, ref: frame.ref)
        } catch {
            post(ServerFrame.error(GatewayError.from(error), ref: frame.ref), order: .now)
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
            post(try await gateway.hello(for: session, ref: frame.ref), order: .now)
            let owner = self.owner
            let expiresAt = identity.expiresAt
            eventLoop.execute { owner.value.authenticated(expiresAt: expiresAt) }
        } catch {
            post(ServerFrame.error(GatewayError.from(error), ref: frame.ref), order: .now)
        }
    }

    /// Sends an error and closes (auth timeout, token expiry).
    func fail(_ error: GatewayError, code: CloseCode) {
        post(ServerFrame.error(error, ref: nil), order: .now)
        close(code: code, reason: error.message)
    }
}
