import Logging
import NIOCore
import Synchronization

/// The engine every transport drives: it authenticates, opens sessions, runs client frames
/// through the pipeline, commits messages (group commit) and delivers them to live sessions.
///
/// Transports only turn bytes into frames and frames into bytes; the HTTP API calls the same
/// methods with a principal of transport `.http`.
public final class Gateway: Sendable {
    public let node: NodeSettings
    public let limits: LimitSettings
    public let presenceSettings: PresenceSettings
    public let stores: Stores
    public let hub: SessionHub
    public let committer: Committer
    public let clock: any GatewayClock
    public let stats: GatewayStats
    public let presence: Presence
    public let logger: Logger
    /// The other nodes of a cluster (`NoClusterBus` on a single node): deliveries and presence
    /// for users live elsewhere cross through it.
    public let cluster: any ClusterBus
    /// Guards the last `typing` time per session: at most one typing event per second each.
    private let typingTimes = Mutex<[String: Int64]>([:])
    /// Guards the pipeline in force; a reload swaps it.
    private let current: Mutex<Pipeline>
    /// Guards the counter that makes session ids unique on this node.
    private let sessionCounter = Mutex<UInt64>(0)

    public init(
        configuration: GatewayConfiguration, stores: Stores, hub: SessionHub, pipeline: Pipeline, clock: any GatewayClock,
        logger: Logger, faults: StoreFaults = StoreFaults(), cluster: any ClusterBus = NoClusterBus()
    ) {
        self.cluster = cluster
        node = configuration.node
        limits = configuration.limits
        presenceSettings = configuration.presence
        self.stores = stores
        self.hub = hub
        self.clock = clock
        self.logger = logger
        let stats = GatewayStats(startedAt: clock.nowMillis())
        self.stats = stats
        current = Mutex(pipeline)
        let presence = Presence(hub: hub, settings: configuration.presence, clock: clock, stores: stores)
        self.presence = presence
        presence.setElsewhere { cluster.isOnlineElsewhere($0) }
        hub.setOnlineObserver { user, online in
            cluster.localUserChanged(user, online: online)
            presence.userChanged(user, online: online)
        }
        committer = Committer(
            store: stores.messages, maxPending: configuration.limits.maxPendingCommits, commitsInFlight: configuration.store.commitsInFlight,
            faults: faults, logger: logger
        ) {
            batch, outcomes in
            Gateway.deliver(batch: batch, outcomes: outcomes, hub: hub, stats: stats, cluster: cluster)
        }
    }

    /// The pipeline in force.
    public var pipeline: Pipeline { current.withLock { $0 } }

    /// Puts a new pipeline in force for frames that arrive from now on; frames in flight finish
    /// on the one they started with.
    public func replacePipeline(_ pipeline: Pipeline) {
        current.withLock { $0 = pipeline }
    }

    // MARK: Sessions

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

    // MARK: Frames

    /// Parses and handles one client frame's JSON text; `reply` gets the direct reply, if any.
    /// Returns the error the client was answered with, if any.
    @discardableResult
    public func handle(text: ByteBuffer, principal: Principal, reply: (ByteBuffer) -> Void) async -> GatewayError? {
        stats.framesIn.wrappingIncrement(ordering: .relaxed)
        switch ClientFrame.parse(text) {
        case .success(let frame):
            return await handle(frame, principal: principal, reply: reply)
        case .failure(let error):
            return refuse(unparsed: error, principal: principal, reply: reply)
        }
    }

    /// Handles one parsed client frame (not `auth`, which the transports handle). Returns the
    /// error the client was answered with, if any.
    @discardableResult
    public func handle(_ frame: ClientFrame, principal: Principal, reply: (ByteBuffer) -> Void) async -> GatewayError? {
        do {
            switch frame.kind {
            case .ping:
                reply(ServerFrame.pong(ref: frame.ref))
            case .send:
                if let pending = try await beginSend(frame, principal: principal, reply: reply) {
                    return await pending.complete(reply)
                }
            case .sync:
                let request = try frame.syncRequest()
                reply(try await sync(user: principal.user, since: request.since, limit: request.limit, ref: frame.ref))
            case .history:
                let request = try frame.historyRequest()
                reply(try await history(user: principal.user, with: request.with, before: request.before, limit: request.limit, ref: frame.ref))
            case .typing:
                try await typing(frame, principal: principal, reply: reply)
            case .read:
                try await read(frame, principal: principal, reply: reply)
            case .delivered:
                try await delivered(frame, principal: principal, reply: reply)
            case .presenceSubscribe:
                let users = try frame.presenceUsers()
                var envelope = Envelope(kind: .presenceSubscribe, sender: principal, ref: frame.ref, frame: frame.object, timestamp: clock.nowMillis())
                guard try await runStages(&envelope, reply: reply) else { return nil }
                guard let session = session(of: principal) else {
                    reply(try await presence.query(viewer: principal.user, users: users, ref: frame.ref))
                    return nil
                }
                reply(try await presence.subscribe(session, to: users, ref: frame.ref))
            case .presenceUnsubscribe:
                let users = try frame.presenceUsers()
                if let session = session(of: principal) { presence.unsubscribe(session, from: users) }
            case .auth:
                throw GatewayError.badFrame("already authenticated")
            }
            return nil
        } catch {
            return refuse(frame, with: error, principal: principal, reply: reply)
        }
    }

    /// Answers a parsed frame that failed with `error`: logs it (code and reason, never the
    /// body; an internal error also in full) and replies with the client's error.
    @discardableResult
    public func refuse(_ frame: ClientFrame, with error: any Error, principal: Principal, reply: (ByteBuffer) -> Void) -> GatewayError {
        let clientError = GatewayError.from(error)
        if clientError.code == .internal {
            logger.error("frame failed", metadata: ["error": "\(error)", "gateway.frame": "\(frame.kind.rawValue)"])
        }
        logger.debug(
            "frame rejected",
            metadata: [
                "gateway.session": "\(principal.session)", "gateway.frame": "\(frame.kind.rawValue)",
                "gateway.code": "\(clientError.code.rawValue)", "gateway.reason": "\(clientError.message)",
            ])
        reply(ServerFrame.error(clientError, ref: frame.ref))
        return clientError
    }

    /// Answers a frame that is not valid JSON or not a known frame (`bad_frame` with the `ref`
    /// when it was readable).
    @discardableResult
    public func refuse(unparsed error: FrameError, principal: Principal, reply: (ByteBuffer) -> Void) -> GatewayError {
        logger.debug("frame rejected", metadata: ["gateway.session": "\(principal.session)", "gateway.code": "\(error.error.code.rawValue)"])
        reply(ServerFrame.error(error.error, ref: error.ref))
        return error.error
    }

    /// A `send` whose message is queued for the store; `complete` waits for the commit and
    /// answers the sender (ack, duplicate ack, or error), then runs the stages' `committed` hooks.
    /// When the send came with an `ackSink`, the committer already answered, right after the
    /// batch's deliveries (see `beginSend`), and `complete` only counts and runs the hooks.
    /// (A class: a session keeps its pending sends in a window, and a reference is one retain
    /// per move where the struct retained each of its fields.)
    public final class PendingAck: Sendable {
        let ticket: CommitTicket
        let envelope: Envelope
        let pipeline: Pipeline
        let gateway: Gateway
        /// Whether the committer writes the answer.
        let answeredByCommitter: Bool

        init(ticket: CommitTicket, envelope: Envelope, pipeline: Pipeline, gateway: Gateway, answeredByCommitter: Bool) {
            self.ticket = ticket
            self.envelope = envelope
            self.pipeline = pipeline
            self.gateway = gateway
            self.answeredByCommitter = answeredByCommitter
        }

        public func complete(_ reply: (ByteBuffer) -> Void) async -> GatewayError? {
            let outcome: CommitOutcome
            do {
                outcome = try await ticket.value()
            } catch {
                gateway.stats.messagesRejected.wrappingIncrement(ordering: .relaxed)
                let clientError = GatewayError.from(error)
                if !answeredByCommitter { reply(ServerFrame.error(clientError, ref: envelope.ref)) }
                return clientError
            }
            if !answeredByCommitter {
                reply(Gateway.answer(.success(outcome), ref: envelope.ref, clientMsgID: envelope.clientMsgID ?? "", sender: envelope.sender.user))
            }
            if case .stored = outcome {
                gateway.stats.messagesAccepted.wrappingIncrement(ordering: .relaxed)
                await pipeline.committed(envelope, outcome: outcome)
            }
            return nil
        }
    }

    /// The answer to a committed (or failed) `send`: its ack, duplicate ack, or error.
    static func answer(_ result: Result<CommitOutcome, GatewayError>, ref: String?, clientMsgID: String, sender: String) -> ByteBuffer {
        switch result {
        case .success(.stored(let stored, let seqs)):
            let seq = seqs.first(where: { $0.user == sender })?.seq
            return ServerFrame.ack(ref: ref, id: stored.id, seq: seq, timestamp: stored.timestamp, clientMsgID: clientMsgID, duplicate: false)
        case .success(.duplicate(let original, let senderSeq)):
            return ServerFrame.ack(
                ref: ref, id: original.id, seq: senderSeq > 0 ? senderSeq : nil, timestamp: original.timestamp, clientMsgID: clientMsgID,
                duplicate: true)
        case .failure(let error):
            return ServerFrame.error(error, ref: ref)
        }
    }

    /// Runs a `send` through the pipeline and queues its message for the store, without waiting
    /// for the commit: a session can start its next `send` while this one commits (sends of one
    /// session still pass the stages and reach the store in order). Returns nil when the frame
    /// was already answered (a stage's reply, or a pipeline without `persist`); throws the error
    /// to answer with.
    ///
    /// With `ackSink`, the committer writes the answer to it as soon as the batch is committed,
    /// right after the batch's deliveries (so an ack and the deliveries of its batch reach the
    /// event loops together); `ackSink` must keep the session's frames in the order it gets them.
    public func beginSend(
        _ frame: ClientFrame, principal: Principal, reply: (ByteBuffer) -> Void, ackSink: (@Sendable (ByteBuffer) -> Void)? = nil
    ) async throws -> PendingAck? {
        let request = try frame.sendRequest()
        var envelope = Envelope(
            kind: .send, sender: principal, ref: frame.ref, frame: frame.object, to: request.to, body: request.body,
            clientMsgID: request.clientMsgID, attachments: request.attachments, timestamp: clock.nowMillis())
        let pipeline = self.pipeline
        switch await pipeline.run(&envelope) {
        case .continue:
            break
        case .reject(let error):
            stats.messagesRejected.wrappingIncrement(ordering: .relaxed)
            throw error
        case .reply(var object):
            object["ref"] = frame.ref.map { .string($0) }
            reply(ServerFrame.object(object))
            return nil
        }
        guard let id = envelope.id, let to = envelope.to, let body = envelope.body, let clientMsgID = envelope.clientMsgID else {
            stats.messagesRejected.wrappingIncrement(ordering: .relaxed)
            logger.error("the pipeline let a message through without an id; add an 'id' stage")
            throw GatewayError.internalError
        }
        let message = StoredMessage(
            id: id, from: principal.user, to: to, timestamp: envelope.timestamp, clientMsgID: clientMsgID, body: body.jsonBytes,
            attachments: envelope.attachments.map { JSONValue.array($0).jsonBytes })
        guard let recipients = envelope.recipients else {
            stats.messagesRejected.wrappingIncrement(ordering: .relaxed)
            logger.error("the pipeline let a message through without recipients; add a stage that provides them (fanout)")
            throw GatewayError.internalError
        }
        let liveOnly = envelope.liveOnlyRecipients ?? []
        guard envelope.persist else {
            // No persist stage: relay live only, no inbox and so no seq.
            let pending = PendingMessage(message: message, inboxes: recipients + liveOnly, originSession: principal.session)
            Gateway.deliverEphemeral(pending, hub: hub, stats: stats, cluster: cluster)
            stats.messagesAccepted.wrappingIncrement(ordering: .relaxed)
            reply(ServerFrame.ack(ref: frame.ref, id: id, seq: nil, timestamp: message.timestamp, clientMsgID: clientMsgID, duplicate: false))
            return nil
        }
        let ticket: CommitTicket
        do {
            var answer: (@Sendable (Result<CommitOutcome, GatewayError>) -> Void)?
            if let ackSink {
                let ref = frame.ref
                let sender = principal.user
                answer = { result in ackSink(Gateway.answer(result, ref: ref, clientMsgID: clientMsgID, sender: sender)) }
            }
            let pending = PendingMessage(
                message: message, inboxes: recipients, originSession: principal.session, liveOnly: liveOnly, answer: answer)
            if pending.isFanoutOnRead {
                // The sender's entry must follow the group's earlier messages still waiting for
                // them, which the commit would otherwise materialize inside the shared group
                // commit: bring the sender's inbox up to date first, in bounded transactions.
                _ = try await stores.messages.inboxHead(user: principal.user)
            }
            ticket = try committer.enqueue(pending, ids: pipeline.idSource)
        } catch {
            stats.messagesRejected.wrappingIncrement(ordering: .relaxed)
            throw error
        }
        return PendingAck(ticket: ticket, envelope: envelope, pipeline: pipeline, gateway: self, answeredByCommitter: ackSink != nil)
    }

    /// Live delivery after a group commit, in commit order: each recipient's sessions get the
    /// message with that recipient's seq; the sending session gets its ack instead.
    ///
    /// Fanout-on-read recipients (`liveOnly`, and any user of `inboxes` the store held back, see
    /// `CommitOutcome.stored`) have no inbox entry yet, so their sessions get the frame without a
    /// `seq`: the seq is assigned when their inbox is next read, and clients dedupe by `id`.
    static func deliver(
        batch: [PendingMessage], outcomes: [CommitOutcome], hub: SessionHub, stats: GatewayStats, cluster: any ClusterBus = NoClusterBus()
    ) {
        var remote: [ClusterDelivery] = []
        for (pending, outcome) in zip(batch, outcomes) {
            guard case .stored(let message, let seqs) = outcome else { continue }
            var template: MessageFrameTemplate?
            for entry in seqs {
                var built: ByteBuffer?
                let reached = hub.deliver(to: entry.user, exceptSession: pending.originSession) {
                    let t = template ?? MessageFrameTemplate(message)
                    template = t
                    let frame = t.frame(seq: entry.seq)
                    built = frame
                    return frame
                }
                if reached > 0 { stats.deliveries.wrappingIncrement(by: reached, ordering: .relaxed) }
                // Sessions of this user on other nodes (the sending session is never there).
                if cluster.isOnlineElsewhere(entry.user) {
                    let t = template ?? MessageFrameTemplate(message)
                    template = t
                    remote.append(ClusterDelivery(user: entry.user, frame: built ?? t.frame(seq: entry.seq), seq: entry.seq))
                }
            }
            var withoutSeq = pending.liveOnly
            if seqs.count < pending.inboxes.count {
                let entered = Set(seqs.map(\.user))
                withoutSeq += pending.inboxes.filter { !entered.contains($0) }
            }
            var unsequenced: ByteBuffer?
            for user in withoutSeq {
                let reached = hub.deliver(to: user, exceptSession: pending.originSession) {
                    let frame = unsequenced ?? ServerFrame.message(message, seq: nil)
                    unsequenced = frame
                    return frame
                }
                if reached > 0 { stats.deliveries.wrappingIncrement(by: reached, ordering: .relaxed) }
                if cluster.isOnlineElsewhere(user) {
                    let frame = unsequenced ?? ServerFrame.message(message, seq: nil)
                    unsequenced = frame
                    remote.append(ClusterDelivery(user: user, frame: frame))
                }
            }
        }
        if !remote.isEmpty { cluster.forward(remote) }
    }

    /// Frames that came from another node for `user`'s sessions here (`ClusterBus`): delivered
    /// as a local delivery is. Returns the number of sessions reached.
    @discardableResult
    public func deliverFromCluster(to user: String, frame: ByteBuffer) -> Int {
        let reached = hub.deliver(to: user) { frame }
        if reached > 0 { stats.deliveries.wrappingIncrement(by: reached, ordering: .relaxed) }
        return reached
    }

    /// `hub.deliver` here, and the same frame to the user's sessions on other nodes.
    private func deliverEverywhere(to user: String, frame: ByteBuffer) {
        hub.deliver(to: user) { frame }
        if cluster.isOnlineElsewhere(user) { cluster.forward([ClusterDelivery(user: user, frame: frame)]) }
    }

    static func deliverEphemeral(_ pending: PendingMessage, hub: SessionHub, stats: GatewayStats, cluster: any ClusterBus = NoClusterBus()) {
        var frame: ByteBuffer?
        var remote: [ClusterDelivery] = []
        for user in pending.inboxes {
            let reached = hub.deliver(to: user, exceptSession: pending.originSession) {
                let f = frame ?? ServerFrame.message(pending.message, seq: nil)
                frame = f
                return f
            }
            if reached > 0 { stats.deliveries.wrappingIncrement(by: reached, ordering: .relaxed) }
            if cluster.isOnlineElsewhere(user) {
                let f = frame ?? ServerFrame.message(pending.message, seq: nil)
                frame = f
                remote.append(ClusterDelivery(user: user, frame: f))
            }
        }
        if !remote.isEmpty { cluster.forward(remote) }
    }

    // MARK: Reads

    /// A `sync` reply: the user's inbox after `since`.
    public func sync(user: String, since: Int64, limit: Int, ref: String?) async throws -> ByteBuffer {
        let head = try await stores.messages.inboxHead(user: user)
        guard since <= head else {
            throw GatewayError.badFrame("'since' (\(since)) is beyond the inbox's last seq (\(head))")
        }
        let page = try await stores.messages.inbox(user: user, after: since, limit: limit)
        let next = page.entries.last?.seq ?? since
        return ServerFrame.sync(ref: ref, entries: page.entries, next: next, more: page.more)
    }

    /// A `history` reply for a conversation the user is part of.
    public func history(user: String, with: Address, before: UInt64?, limit: Int, ref: String?) async throws -> ByteBuffer {
        if case .group(let id) = with {
            guard try await stores.groups.isMember(user, of: id) else {
                throw GatewayError.forbidden("not a member of group '\(id)'")
            }
        }
        let conversation = with.conversationKey(sender: user)
        let page = try await stores.messages.history(conversation: conversation, before: before, limit: limit)
        // Each member's read position, so a client can show read marks.
        let positions = try await stores.receipts.readPositions(conversation: conversation)
        var reads = JSONObject()
        for (member, upTo) in positions.sorted(by: { $0.key < $1.key }) { reads[member] = .string(String(upTo)) }
        return ServerFrame.history(ref: ref, messages: page.messages, more: page.more, extra: ["reads": .object(reads)])
    }

    // MARK: Ephemeral frames

    /// The live session a principal speaks for (nil for the stateless HTTP API).
    func session(of principal: Principal) -> Session? {
        hub.sessions(of: principal.user).first { $0.id == principal.session }
    }

    /// Runs the stages that take a frame other than `send`. Returns false when a stage answered
    /// with `.reply` (the sender got that frame, with the `ref`, and nothing else happens).
    private func runStages(_ envelope: inout Envelope, reply: (ByteBuffer) -> Void) async throws -> Bool {
        switch await pipeline.run(&envelope) {
        case .continue:
            return true
        case .reject(let error):
            throw error
        case .reply(var object):
            object["ref"] = envelope.ref.map { .string($0) }
            reply(ServerFrame.object(object))
            return false
        }
    }

    private func typing(_ frame: ClientFrame, principal: Principal, reply: (ByteBuffer) -> Void) async throws {
        let to = try frame.typingRequest()
        // Ephemeral and cheap to drop: more than one per second from a session is ignored.
        let now = clock.nowMillis()
        let allowed = typingTimes.withLock { times -> Bool in
            if let last = times[principal.session], now - last < 1000 { return false }
            if times.count >= 100_000 { times.removeAll(keepingCapacity: true) }
            times[principal.session] = now
            return true
        }
        guard allowed else { return }
        var envelope = Envelope(kind: .typing, sender: principal, ref: frame.ref, frame: frame.object, to: to, timestamp: clock.nowMillis())
        guard try await runStages(&envelope, reply: reply) else { return }
        let recipients = try await Recipients.resolve(to: envelope.to ?? to, sender: principal.user, groups: stores.groups)
        var w = JSONWriter(capacity: 96)
        w.raw("{\"type\":\"typing\",\"from\":")
        w.string(principal.user)
        w.raw(",\"to\":")
        (envelope.to ?? to).write(to: &w)
        w.raw("}")
        let bytes = ByteBuffer(bytes: w.bytes)
        for user in recipients where user != principal.user {
            deliverEverywhere(to: user, frame: bytes)
        }
    }

    private func read(_ frame: ClientFrame, principal: Principal, reply: (ByteBuffer) -> Void) async throws {
        let request = try frame.readRequest()
        var envelope = Envelope(kind: .read, sender: principal, ref: frame.ref, frame: frame.object, to: request.with, timestamp: clock.nowMillis())
        guard try await runStages(&envelope, reply: reply) else { return }
        let recipients = try await Recipients.resolve(to: request.with, sender: principal.user, groups: stores.groups)
        let conversation = request.with.conversationKey(sender: principal.user)
        // Only a position that moved forward is news.
        guard try await stores.receipts.markRead(user: principal.user, conversation: conversation, upTo: request.upTo) else { return }
        for user in recipients where user != principal.user {
            // Each member sees the conversation from their side: 1:1 receipts name the reader.
            let with: Address
            switch request.with {
            case .user: with = .user(principal.user)
            case .group: with = request.with
            }
            let receipt: JSONObject = [
                "type": "receipt", "from": .string(principal.user), "with": with.json, "up_to": .string(String(request.upTo)),
            ]
            deliverEverywhere(to: user, frame: ServerFrame.object(receipt))
        }
    }

    /// `delivered`: no reply and nothing stored; the stages that take it (the `push` stage,
    /// `on: [delivered]`) learn that the device holds the user's inbox up to `seq`.
    private func delivered(_ frame: ClientFrame, principal: Principal, reply: (ByteBuffer) -> Void) async throws {
        _ = try frame.deliveredRequest()  // refuse a malformed frame before any stage sees it
        var envelope = Envelope(kind: .delivered, sender: principal, ref: frame.ref, frame: frame.object, timestamp: clock.nowMillis())
        _ = try await runStages(&envelope, reply: reply)
    }

    /// Stops taking messages and waits for queued commits to finish.
    public func drain() async {
        presence.stop()
        await committer.close()
    }
}
