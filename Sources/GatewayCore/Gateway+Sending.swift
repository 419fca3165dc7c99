import Logging
import NIOCore
import Synchronization

/// Sending and delivery: a `send` through the pipeline into the commit queue (`beginSend`, a
/// `PendingSend` until its commit), live delivery after each group commit, here and through the
/// cluster, and the relay of `typing`.
extension Gateway {
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
    ) async throws -> PendingSend? {
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
        return PendingSend(ticket: ticket, envelope: envelope, pipeline: pipeline, gateway: self, answeredByCommitter: ackSink != nil)
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
            deliverUnsequenced(message, to: withoutSeq, except: pending.originSession, hub: hub, stats: stats, cluster: cluster, remote: &remote)
        }
        if !remote.isEmpty { cluster.forward(remote) }
    }

    /// `message` without a seq to the sessions of `users` here (but `originSession`), and to
    /// `remote` for those live on other nodes: one frame built, when first needed.
    private static func deliverUnsequenced(
        _ message: StoredMessage, to users: [String], except originSession: String?, hub: SessionHub, stats: GatewayStats,
        cluster: any ClusterBus, remote: inout [ClusterDelivery]
    ) {
        var unsequenced: ByteBuffer?
        for user in users {
            let reached = hub.deliver(to: user, exceptSession: originSession) {
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

    /// Frames that came from another node for `user`'s sessions here (`ClusterBus`): delivered
    /// as a local delivery is. Returns the number of sessions reached.
    @discardableResult
    public func deliverFromCluster(to user: String, frame: ByteBuffer) -> Int {
        let reached = hub.deliver(to: user) { frame }
        if reached > 0 { stats.deliveries.wrappingIncrement(by: reached, ordering: .relaxed) }
        return reached
    }

    /// `hub.deliver` here, and the same frame to the user's sessions on other nodes.
    func deliverEverywhere(to user: String, frame: ByteBuffer) {
        hub.deliver(to: user) { frame }
        if cluster.isOnlineElsewhere(user) { cluster.forward([ClusterDelivery(user: user, frame: frame)]) }
    }

    /// A message of a pipeline without `persist`: live only, no inbox and so no seq.
    static func deliverEphemeral(_ pending: PendingMessage, hub: SessionHub, stats: GatewayStats, cluster: any ClusterBus = NoClusterBus()) {
        var remote: [ClusterDelivery] = []
        deliverUnsequenced(pending.message, to: pending.inboxes, except: pending.originSession, hub: hub, stats: stats, cluster: cluster, remote: &remote)
        if !remote.isEmpty { cluster.forward(remote) }
    }

    /// `typing`: relayed to the other members of the conversation, here and on other nodes.
    func typing(_ frame: ClientFrame, principal: Principal, reply: (ByteBuffer) -> Void) async throws {
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
        var envelope = Envelope(kind: .typing, sender: principal, ref: frame.ref, frame: frame.object, to: to, timestamp: now)
        guard try await runStages(&envelope, reply: reply) else { return }
        let recipients = try await Recipients.resolve(to: envelope.to ?? to, sender: principal.user, groups: stores.groups)
        let bytes = ServerFrame.typing(from: principal.user, to: envelope.to ?? to)
        for user in recipients where user != principal.user {
            deliverEverywhere(to: user, frame: bytes)
        }
    }
}
