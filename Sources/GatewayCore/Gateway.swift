import Logging
import NIOCore
import Synchronization

/// The engine every transport drives: it authenticates, opens sessions, runs client frames
/// through the pipeline, commits messages (group commit) and delivers them to live sessions.
///
/// Transports only turn bytes into frames and frames into bytes; the HTTP API calls the same
/// methods with a principal of transport `.http`.
///
/// Its work is split by job, one file each: this one holds its state and dispatches client
/// frames (`handle`); `Gateway+Sessions.swift` authenticates and opens and closes sessions;
/// `Gateway+Sending.swift` takes `send` (a `PendingSend` until it is committed) and delivers
/// to live sessions, here and on other nodes, and relays `typing`; `Gateway+Reads.swift`
/// answers `sync` and `history` and handles receipts (`read`, `delivered`). Frames are built
/// only by `ServerFrame`.
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
    let typingTimes = Mutex<[String: Int64]>([:])
    /// Guards the pipeline in force; a reload swaps it.
    private let current: Mutex<Pipeline>
    /// Guards the counter that makes session ids unique on this node.
    let sessionCounter = Mutex<UInt64>(0)

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

    // MARK: Frames

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

    /// Runs the stages that take a frame other than `send`. Returns false when a stage answered
    /// with `.reply` (the sender got that frame, with the `ref`, and nothing else happens).
    func runStages(_ envelope: inout Envelope, reply: (ByteBuffer) -> Void) async throws -> Bool {
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

    /// Stops taking messages and waits for queued commits to finish.
    public func drain() async {
        presence.stop()
        await committer.close()
    }
}
