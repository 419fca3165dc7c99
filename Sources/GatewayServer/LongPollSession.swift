import Atomics
import GatewayCore
import NIOCore
import Synchronization

/// A long-poll client: frames wait in a bounded queue until the next poll takes them.
///
/// One poll may wait at a time; a second one replaces it, and the first returns empty at once.
/// Frames handed to a poll whose response never reaches the client are recovered with `sync`
/// (the contiguous `seq` shows the gap).
final class LongPollSession: SessionConnection, Sendable {
    struct Waiter {
        let id: UInt64
        let continuation: CheckedContinuation<[ByteBuffer], Never>
    }

    struct State {
        var queue: [ByteBuffer] = []
        var waiter: Waiter?
        var nextWaiterID: UInt64 = 0
        /// When the last poll ended or began (ms); the session expires `session_ttl_ms` after.
        var lastSeen: Int64
        var closed = false
        /// The waiting poll's timeout, cancelled when the poll ends sooner (its closure holds
        /// this session: left to fire, a closed session would live on until then). On the
        /// gateway's clock.
        var timer: ClockTimer?
        /// The highest inbox seq the client confirmed: its poll's `ack`, or, without one, the last
        /// seq of the answer before its latest poll. Saved in the cluster's session row.
        var confirmedSeq: Int64 = 0
        /// The highest message seq handed to a poll answer.
        var answeredSeq: Int64 = 0
        /// A re-homed session loading its inbox: live frames wait in `held` until it is loaded.
        var catchingUp = false
        var held: [ByteBuffer] = []
        /// A re-homed session drops live message frames at or below this seq (they came from
        /// the inbox already).
        var floorSeq: Int64?
    }

    let id: String
    let registry: LongPollRegistry
    let maxQueue: Int
    /// Set once the gateway session is open (right after creation).
    let session = Mutex<Session?>(nil)
    /// Guards the frame queue and the waiting poll.
    private let state: Mutex<State>

    init(id: String, registry: LongPollRegistry, maxQueue: Int, now: Int64, catchingUp: Bool = false) {
        self.id = id
        self.registry = registry
        self.maxQueue = maxQueue
        self.state = Mutex(State(lastSeen: now, catchingUp: catchingUp))
        registry.gateway.stats.live.longPollConnections.wrappingIncrement(ordering: .relaxed)
    }

    deinit {
        registry.gateway.stats.live.longPollConnections.wrappingDecrement(ordering: .relaxed)
    }

    // MARK: SessionConnection

    func send(_ frame: ByteBuffer) -> Bool {
        let (accepted, wake): (Bool, (Waiter, [ByteBuffer])?) = state.withLock { state in
            guard !state.closed else { return (true, nil) }
            if let floor = state.floorSeq, let seq = ServerFrame.messageSeq(frame), seq <= floor { return (true, nil) }
            if state.catchingUp {
                guard state.held.count < maxQueue else { return (false, nil) }
                state.held.append(frame)
                return (true, nil)
            }
            if let waiter = state.waiter {
                state.waiter = nil
                state.timer?.cancel()
                state.timer = nil
                // The poll ends now: the session's time-to-live counts from here.
                state.lastSeen = registry.clock.nowMillis()
                state.queue.append(frame)
                defer { state.queue = [] }
                return (true, (waiter, state.queue))
            }
            guard state.queue.count < maxQueue else { return (false, nil) }
            state.queue.append(frame)
            return (true, nil)
        }
        if let (waiter, frames) = wake { waiter.continuation.resume(returning: frames) }
        return accepted
    }

    func close(code: CloseCode, reason: String) {
        registry.remove(self)
    }

    // MARK: Polling

    /// Waits up to `timeoutMs` for frames; returns at once if some are queued. `ack`: the
    /// highest seq the client holds, if it said so.
    func poll(timeoutMs: Int, now: Int64, eventLoop: any EventLoop, ack: Int64? = nil) async -> [ByteBuffer] {
        let frames = await wait(timeoutMs: timeoutMs, now: now, eventLoop: eventLoop, ack: ack)
        if let top = frames.lazy.compactMap(ServerFrame.messageSeq).max() {
            state.withLock { $0.answeredSeq = max($0.answeredSeq, top) }
        }
        return frames
    }

    private func wait(timeoutMs: Int, now: Int64, eventLoop: any EventLoop, ack: Int64?) async -> [ByteBuffer] {
        await withCheckedContinuation { (continuation: CheckedContinuation<[ByteBuffer], Never>) in
            let (immediate, replaced, waiterID): ([ByteBuffer]?, Waiter?, UInt64) = state.withLock { state in
                state.lastSeen = now
                // A new poll: the client has the answer before it (or says what it has).
                state.confirmedSeq = max(state.confirmedSeq, ack ?? state.answeredSeq)
                if state.closed { return ([], nil, 0) }
                if !state.queue.isEmpty {
                    defer { state.queue = [] }
                    return (state.queue, nil, 0)
                }
                let old = state.waiter
                state.timer?.cancel()
                state.timer = nil
                state.nextWaiterID += 1
                state.waiter = Waiter(id: state.nextWaiterID, continuation: continuation)
                return (nil, old, state.nextWaiterID)
            }
            replaced?.continuation.resume(returning: [])
            if let immediate {
                continuation.resume(returning: immediate)
                return
            }
            let timer = registry.clock.schedule(at: now + Int64(timeoutMs), on: eventLoop) { [self] in
                self.timeout(waiterID: waiterID)
            }
            let stale = state.withLock { state -> Bool in
                guard state.waiter?.id == waiterID else { return true }
                state.timer = timer
                return false
            }
            // The poll already ended (a frame, a newer poll, the session's end): no timeout.
            if stale { timer.cancel() }
        }
    }

    private func timeout(waiterID: UInt64) {
        let waiter: Waiter? = state.withLock { state in
            guard let waiter = state.waiter, waiter.id == waiterID else { return nil }
            state.waiter = nil
            state.timer = nil
            state.lastSeen = registry.clock.nowMillis()
            return waiter
        }
        waiter?.continuation.resume(returning: [])
    }

    /// Whether the session has gone `ttl` without a poll (a waiting poll keeps it alive).
    func isExpired(now: Int64, ttl: Int64) -> Bool {
        state.withLock { $0.waiter == nil && now - $0.lastSeen > ttl }
    }

    func touch(now: Int64) {
        state.withLock { $0.lastSeen = now }
    }

    /// The highest seq the client confirmed (see `State.confirmedSeq`).
    var confirmedSeq: Int64 { state.withLock { $0.confirmedSeq } }

    func confirm(_ seq: Int64) {
        state.withLock { $0.confirmedSeq = max($0.confirmedSeq, seq) }
    }

    /// Ends a re-homed session's catch-up: `loaded` (the inbox after the client's seq, through
    /// `through`) goes first, then the live frames held meanwhile that are not among them.
    /// Returns false when that is more than the queue holds (the caller ends the session).
    func finishCatchUp(loaded: [ByteBuffer], through: Int64) -> Bool {
        let (fits, wake): (Bool, (Waiter, [ByteBuffer])?) = state.withLock { state in
            state.catchingUp = false
            state.floorSeq = through
            let live = state.held.filter { frame in ServerFrame.messageSeq(frame).map { $0 > through } ?? true }
            state.held = []
            state.queue = loaded + live
            guard state.queue.count <= maxQueue else { return (false, nil) }
            guard !state.queue.isEmpty, let waiter = state.waiter else { return (true, nil) }
            state.waiter = nil
            state.timer?.cancel()
            state.timer = nil
            state.lastSeen = registry.clock.nowMillis()
            defer { state.queue = [] }
            return (true, (waiter, state.queue))
        }
        if let (waiter, frames) = wake { waiter.continuation.resume(returning: frames) }
        return fits
    }

    /// Ends the session: a waiting poll returns what is queued.
    func shutdown() {
        let (waiter, frames): (Waiter?, [ByteBuffer]) = state.withLock { state in
            state.closed = true
            state.timer?.cancel()
            defer {
                state.waiter = nil
                state.queue = []
                state.timer = nil
            }
            return (state.waiter, state.queue)
        }
        waiter?.continuation.resume(returning: frames)
    }
}

/// The long-poll sessions of this node, expired after `session_ttl_ms` without a poll.
final class LongPollRegistry: Sendable {
    let gateway: Gateway
    let settings: LongPollSettings
    /// A long-poll session holds a place on the public port while it lives, as a socket does.
    let admission: ConnectionAdmission
    /// Most bytes of an answer relayed from another node (`cluster.relay_max_bytes`).
    let relayMaxBytes: Int
    var clock: any GatewayClock { gateway.clock }
    /// Guards the map of session id → long-poll session.
    let sessions = Mutex<[String: LongPollSession]>([:])
    private let sweeper = Mutex<RepeatedClockTask?>(nil)
    /// Cluster mode: sessions ended since the last checkpoint (their rows are deleted then),
    /// whether a checkpoint runs, and the sessions being re-homed here
    /// (`LongPollRehoming.swift`).
    let durable = Mutex(DurableState())

    init(gateway: Gateway, settings: LongPollSettings, admission: ConnectionAdmission, relayMaxBytes: Int = 64 << 20) {
        self.gateway = gateway
        self.settings = settings
        self.admission = admission
        self.relayMaxBytes = relayMaxBytes
    }

    var count: Int { sessions.withLock { $0.count } }

    /// Opens a long-poll session for an authenticated user.
    func open(
        identity: Identity, device: String?, remoteAddress: String?, sessionID: String? = nil, catchingUp: Bool = false
    ) throws(GatewayError) -> (LongPollSession, Session) {
        guard count < settings.maxSessions else {
            throw GatewayError.unavailable("this node is at capacity", retryAfterMs: 5000)
        }
        switch admission.admit(address: remoteAddress) {
        case .capacity?: throw GatewayError.unavailable("this node is at capacity", retryAfterMs: 5000)
        case .perAddress?: throw GatewayError(.rateLimited, "too many connections from this address", retryAfterMs: 5000)
        case nil: break
        }
        let id = sessionID ?? gateway.makeSessionID()
        let connection = LongPollSession(
            id: id, registry: self, maxQueue: gateway.limits.outboundQueue, now: clock.nowMillis(), catchingUp: catchingUp)
        let session: Session
        do {
            session = try gateway.open(
                identity: identity, device: device, transport: .longpoll, remoteAddress: remoteAddress, connection: connection, sessionID: id)
        } catch {
            admission.release(address: remoteAddress)
            throw error
        }
        connection.session.withLock { $0 = session }
        sessions.withLock { $0[session.id] = connection }
        return (connection, session)
    }

    /// Whether this node holds the session `id` (whoever's it is).
    func holds(_ id: String) -> Bool {
        sessions.withLock { $0[id] != nil }
    }

    func find(_ id: String, user: String) -> LongPollSession? {
        guard let connection = sessions.withLock({ $0[id] }) else { return nil }
        guard connection.session.withLock({ $0?.user }) == user else { return nil }
        return connection
    }

    func remove(_ connection: LongPollSession) {
        let removed = sessions.withLock { map -> Bool in
            guard let session = connection.session.withLock({ $0 }), map[session.id] === connection else { return false }
            map[session.id] = nil
            return true
        }
        connection.shutdown()
        if removed, let session = connection.session.withLock({ $0 }) {
            ended(session.id)
            gateway.close(session)
            admission.release(address: session.principal.remoteAddress)
            // The session holds this connection (`Session.connection`): keeping it here too
            // would keep both alive for ever.
            connection.session.withLock { $0 = nil }
        }
    }

    func sweep() {
        let now = clock.nowMillis()
        let ttl = Int64(settings.sessionTTLMs)
        let expired = sessions.withLock { map in map.values.filter { $0.isExpired(now: now, ttl: ttl) } }
        for connection in expired { remove(connection) }
        checkpoint()
    }

    /// Starts the expiry sweep on `eventLoop`, every quarter of the time-to-live of the
    /// gateway's clock.
    func start(on eventLoop: any EventLoop) {
        let task = RepeatedClockTask(clock: clock, interval: Int64(max(50, settings.sessionTTLMs / 4)), on: eventLoop) { [self] in
            self.sweep()
        }
        let previous = sweeper.withLock { sweeper in
            defer { sweeper = task }
            return sweeper
        }
        previous?.cancel()
    }

    func stop() {
        let stopped = sweeper.withLock { sweeper in
            defer { sweeper = nil }
            return sweeper
        }
        stopped?.cancel()
        let all = sessions.withLock { map -> [LongPollSession] in
            defer { map = [:] }
            return Array(map.values)
        }
        for connection in all {
            connection.shutdown()
            let session = connection.session.withLock { session in
                defer { session = nil }
                return session
            }
            if let session {
                gateway.close(session)
                admission.release(address: session.principal.remoteAddress)
            }
        }
    }
}
