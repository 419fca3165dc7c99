import GatewayCore
import Logging
import NIOCore

/// Long-poll sessions that outlive their node (cluster mode, `ClusterBus.longPolls`).
///
/// - **Open**: the session's row is written before the open answer (`recordOpened`), with the
///   inbox head of its `hello` as the confirmed seq.
/// - **Checkpoint**: with each expiry sweep (every `session_ttl_ms / 4`), one statement saves
///   every local session's confirmed seq and expiry and deletes the rows of ended sessions.
/// - **Re-home**: a request for a session whose owner is not live (`LongPollLocation.orphaned`)
///   claims the row, opens the session here under the same id, and queues the user's inbox
///   after the client's `ack` (or the row's confirmed seq), then the live frames that arrived
///   meanwhile, without the ones the inbox already gave.
extension LongPollRegistry {
    struct DurableState {
        var ended: [String] = []
        var checkpointing = false
        var rehoming: Set<String> = []
    }

    /// Most ended session ids kept for the next checkpoint (past it, their rows expire).
    static let maxEnded = 65_536

    var directory: (any LongPollDirectory)? { gateway.cluster.longPolls }

    func ended(_ id: String) {
        guard directory != nil else { return }
        durable.withLock { state in
            if state.ended.count < Self.maxEnded { state.ended.append(id) }
        }
    }

    /// Writes a new session's row (cluster mode) before its open is answered, so that every
    /// node finds it. Throws `unavailable` when it cannot be written.
    func recordOpened(_ connection: LongPollSession, _ session: Session, inboxSeq: Int64) async throws {
        guard let directory else { return }
        connection.confirm(inboxSeq)
        let record = LongPollRecord(
            session: session.id, user: session.user, device: session.principal.device, ackedSeq: inboxSeq,
            expiresAt: clock.nowMillis() + Int64(settings.sessionTTLMs))
        do {
            try await directory.save([record], ended: [])
        } catch {
            gateway.logger.warning("long-poll session row not written", metadata: ["error": "\(error)", "gateway.session": "\(session.id)"])
            throw GatewayError.unavailable("the cluster's session table cannot be written; retry shortly", retryAfterMs: 1000)
        }
    }

    /// Saves every local session's confirmed seq and expiry, and forgets ended ones: one
    /// statement, in the background; skipped while the previous one runs.
    func checkpoint() {
        guard let directory else { return }
        let now = clock.nowMillis()
        let ttl = Int64(settings.sessionTTLMs)
        let live = sessions.withLock { Array($0.values) }
        let records: [LongPollRecord] = live.compactMap { connection in
            guard let session = connection.session.withLock({ $0 }) else { return nil }
            return LongPollRecord(
                session: session.id, user: session.user, device: session.principal.device, ackedSeq: connection.confirmedSeq,
                expiresAt: now + ttl)
        }
        let ended: [String]? = durable.withLock { state in
            guard !state.checkpointing, !records.isEmpty || !state.ended.isEmpty else { return nil }
            state.checkpointing = true
            defer { state.ended = [] }
            return state.ended
        }
        guard let ended else { return }
        Task {
            do {
                let lost = try await directory.save(records, ended: ended)
                // Taken over by another node while this node's lease had lapsed: that node
                // delivers them now; the copies here end (their rows stay the other node's).
                for id in lost {
                    guard let connection = sessions.withLock({ $0[id] }) else { continue }
                    gateway.logger.warning("long-poll session taken over by another node; ending it here", metadata: ["gateway.session": "\(id)"])
                    remove(connection)
                }
            } catch {
                gateway.logger.warning("long-poll checkpoint failed", metadata: ["error": "\(error)", "gateway.sessions": "\(records.count)"])
                durable.withLock { state in
                    state.ended = Array((ended + state.ended).prefix(Self.maxEnded))
                }
            }
            durable.withLock { $0.checkpointing = false }
        }
    }

    /// Re-homes an orphaned session here (the caller authenticated `identity`, the session's
    /// user). Returns whether this node now holds it; false when another node claimed it first.
    func rehome(_ record: LongPollRecord, identity: Identity, ack: Int64?, remoteAddress: String?) async throws -> Bool {
        guard let directory else { return false }
        let busy = durable.withLock { state in
            state.rehoming.insert(record.session).inserted == false
        }
        if busy { throw GatewayError.unavailable("this long-poll session is moving to this node; retry shortly", retryAfterMs: 200) }
        defer { _ = durable.withLock { $0.rehoming.remove(record.session) } }
        if holds(record.session) { return true }
        let claimed: Bool
        do {
            claimed = try await directory.claim(record, expiresAt: clock.nowMillis() + Int64(settings.sessionTTLMs))
        } catch {
            throw GatewayError.unavailable("the cluster's session table cannot be written; retry shortly", retryAfterMs: 1000)
        }
        guard claimed else { return false }
        let (connection, session) = try open(
            identity: identity, device: record.device, remoteAddress: remoteAddress, sessionID: record.session, catchingUp: true)
        let start = max(0, ack ?? record.ackedSeq)
        connection.confirm(start)
        var frames: [ByteBuffer] = []
        var through = start
        do {
            while true {
                let page = try await gateway.stores.messages.inbox(user: session.user, after: through, limit: 200)
                for entry in page.entries {
                    frames.append(ServerFrame.message(entry.message, seq: entry.seq))
                    through = entry.seq
                }
                if !page.more || page.entries.isEmpty || frames.count > gateway.limits.outboundQueue { break }
            }
        } catch {
            remove(connection)
            throw GatewayError.unavailable("the store is unavailable; retry shortly", retryAfterMs: 1000)
        }
        guard connection.finishCatchUp(loaded: frames, through: through) else {
            // More than a session's queue holds: as for a slow consumer, the session ends and
            // the client opens a new one and syncs.
            gateway.logger.info("re-homed long-poll session ended: its backlog exceeds the queue", metadata: ["gateway.session": "\(record.session)"])
            remove(connection)
            return true
        }
        gateway.logger.info(
            "long-poll session re-homed",
            metadata: [
                "gateway.session": "\(record.session)", "gateway.user": "\(record.user)", "gateway.from_seq": "\(start)",
                "gateway.frames": "\(frames.count)",
            ])
        return true
    }
}
