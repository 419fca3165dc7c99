import Logging
import NIOCore
import Synchronization

/// Who is online, who wants to know, and telling them (PROTOCOL.md `presence`).
///
/// A user is online while at least one session is live. When the last one closes, the user goes
/// offline only after `presence.grace_ms` without a new session, so a quick reconnect does not
/// flap. A session silent for `offline_after_ms` is closed by its transport, which counts as
/// closing. Subscriptions belong to a session and end with it.
public final class Presence: Sendable {
    struct State {
        /// Subscriber session id → the users it watches.
        var watching: [String: Set<String>] = [:]
        /// Watched user → subscriber session id → the subscriber session.
        var watchers: [String: [String: Session]] = [:]
        /// Users whose last session closed and whose offline event waits for the grace period.
        var pendingOffline: [String: Task<Void, Never>] = [:]
        /// When each user was last active, for users who went offline (bounded, oldest dropped).
        var lastSeen: [String: Int64] = [:]
        var lastSeenOrder: [String] = []
        /// Set by `stop()`: sessions closed at shutdown start no grace wait (nobody is left to
        /// tell, and a task started then would outlive the gateway).
        var stopped = false
    }

    /// Guards subscriptions, pending offline events and last-seen times.
    private let state = Mutex(State())
    private let hub: SessionHub
    private let settings: PresenceSettings
    private let clock: any GatewayClock
    private let stores: Stores
    /// Whether a user is live on another node of the cluster (`ClusterBus.isOnlineElsewhere`).
    /// (A box, not the closure: a closure read out of a `Mutex` is re-wrapped in a new thunk on
    /// every read; see `SessionHub.OnlineObserver`.)
    private let elsewhere = Mutex<ElsewhereCheck?>(nil)

    private final class ElsewhereCheck: Sendable {
        let call: @Sendable (String) -> Bool
        init(_ call: @escaping @Sendable (String) -> Bool) { self.call = call }
    }
    /// Most users one session may watch.
    public static let maxWatchedPerSession = 5000
    /// Most offline users whose last-seen time is remembered.
    public static let maxLastSeen = 100_000

    public init(hub: SessionHub, settings: PresenceSettings, clock: any GatewayClock, stores: Stores) {
        self.hub = hub
        self.settings = settings
        self.clock = clock
        self.stores = stores
    }

    /// Sets how to tell whether a user is live on another node (a cluster's bus).
    public func setElsewhere(_ check: @escaping @Sendable (String) -> Bool) {
        let box = ElsewhereCheck(check)
        elsewhere.withLock { $0 = box }
    }

    private func isOnlineElsewhere(_ user: String) -> Bool {
        elsewhere.withLock { $0 }?.call(user) ?? false
    }

    // MARK: Transitions (from the hub)

    /// Called by a cluster's bus when `user` went live on some other node while live on none
    /// (true), or left the last other node (false). Presence is cluster-wide: subscribers
    /// hear of a change only when the user's state on the whole cluster changed.
    public func remoteUserChanged(_ user: String, online: Bool) {
        userChanged(user, online: online, otherSideOnline: hub.isOnline(user))
    }

    /// Called by the hub when a user's first session opens or last session closes.
    public func userChanged(_ user: String, online: Bool) {
        userChanged(user, online: online, otherSideOnline: isOnlineElsewhere(user))
    }

    /// - Parameter otherSideOnline: whether the user is live where this change did not happen
    ///   (on other nodes for a local change, here for a remote one).
    private func userChanged(_ user: String, online: Bool, otherSideOnline: Bool) {
        if online {
            let wasPending = state.withLock { state -> Bool in
                guard let task = state.pendingOffline.removeValue(forKey: user) else { return false }
                task.cancel()
                return true
            }
            // Back within the grace period, or live elsewhere all along: subscribers never saw them go.
            if !wasPending && !otherSideOnline { publish(user) }
            return
        }
        // Still live on another node (or here): nothing changed for subscribers.
        if otherSideOnline { return }
        let now = clock.nowMillis()
        // A time on the gateway's clock, taken now: the grace ends then however late the task
        // starts, and a test stepping its clock past it sees the event.
        let graceEnds = now + Int64(settings.graceMs)
        state.withLock { state in
            remember(user, at: now, in: &state)
            state.pendingOffline[user]?.cancel()
            guard !state.stopped else { return }
            state.pendingOffline[user] = Task { [self, clock] in
                do {
                    try await clock.sleep(until: graceEnds)
                } catch {
                    return  // cancelled: the user came back, or the gateway stops
                }
                let still = self.state.withLock { state -> Bool in
                    guard state.pendingOffline[user] != nil else { return false }
                    state.pendingOffline[user] = nil
                    return true
                }
                if still, !self.hub.isOnline(user), !self.isOnlineElsewhere(user) { self.publish(user) }
            }
        }
    }

    private func remember(_ user: String, at time: Int64, in state: inout State) {
        if state.lastSeen.updateValue(time, forKey: user) == nil {
            state.lastSeenOrder.append(user)
            if state.lastSeenOrder.count > Self.maxLastSeen {
                let excess = state.lastSeenOrder.count - Self.maxLastSeen / 2
                for dropped in state.lastSeenOrder.prefix(excess) { state.lastSeen[dropped] = nil }
                state.lastSeenOrder.removeFirst(excess)
            }
        }
    }

    /// Sends `user`'s current state to every session watching them.
    private func publish(_ user: String) {
        let subscribers = state.withLock { Array(($0.watchers[user] ?? [:]).values) }
        guard !subscribers.isEmpty else { return }
        let bytes = ServerFrame.presence(ref: nil, users: [entry(user)])
        for session in subscribers where session.connection.send(bytes) == false {
            session.connection.close(code: .slowConsumer, reason: "outbound queue full")
        }
    }

    /// `{"user","status","last_active_at"}` for one user.
    public func entry(_ user: String) -> JSONValue {
        let sessions = hub.sessions(of: user)
        let elsewhere = sessions.isEmpty && isOnlineElsewhere(user)
        let online = !sessions.isEmpty || elsewhere || state.withLock { $0.pendingOffline[user] != nil }
        var lastActive = sessions.map { $0.lastActiveAt.load(ordering: .relaxed) }.max() ?? 0
        // Live on another node: active now, as far as this node can tell.
        if elsewhere { lastActive = clock.nowMillis() }
        if lastActive == 0 { lastActive = state.withLock { $0.lastSeen[user] } ?? 0 }
        return ["user": .string(user), "status": .string(online ? "online" : "offline"), "last_active_at": .int(lastActive)]
    }

    // MARK: Subscriptions

    /// Subscribes `session` to the users it may see; returns the `presence` reply with their
    /// current state (users it may not see are left out).
    public func subscribe(_ session: Session, to users: [String], ref: String?) async throws -> ByteBuffer {
        var allowed: [String] = []
        for user in Set(users).sorted() where try await mayWatch(session.user, user, forPush: true) {
            allowed.append(user)
        }
        try state.withLock { state in
            var watched = state.watching[session.id] ?? []
            guard watched.count + allowed.count <= Self.maxWatchedPerSession || allowed.allSatisfy(watched.contains) else {
                throw GatewayError.badFrame("at most \(Self.maxWatchedPerSession) presence subscriptions per session")
            }
            for user in allowed {
                watched.insert(user)
                state.watchers[user, default: [:]][session.id] = session
            }
            state.watching[session.id] = watched
        }
        return reply(allowed, ref: ref)
    }

    public func unsubscribe(_ session: Session, from users: [String]) {
        state.withLock { state in
            for user in users {
                state.watching[session.id]?.remove(user)
                state.watchers[user]?[session.id] = nil
                if state.watchers[user]?.isEmpty == true { state.watchers[user] = nil }
            }
        }
    }

    /// Drops every subscription of a closed session.
    public func sessionClosed(_ session: Session) {
        state.withLock { state in
            guard let watched = state.watching.removeValue(forKey: session.id) else { return }
            for user in watched {
                state.watchers[user]?[session.id] = nil
                if state.watchers[user]?.isEmpty == true { state.watchers[user] = nil }
            }
        }
    }

    /// The state of the users `viewer` may see (for `GET /v1/presence`).
    public func query(viewer: String, users: [String], ref: String?) async throws -> ByteBuffer {
        var allowed: [String] = []
        for user in users where try await mayWatch(viewer, user, forPush: false) {
            allowed.append(user)
        }
        return reply(allowed, ref: ref)
    }

    func reply(_ users: [String], ref: String?) -> ByteBuffer {
        ServerFrame.presence(ref: ref, users: users.map(entry))
    }

    /// Whether `viewer` may see `user`: always with `visibility: everyone`; with `shared`, when
    /// they share a 1:1 conversation or a group. A group larger than `fanout_max_group` does not
    /// grant pushed events (`forPush`), only `GET /v1/presence`.
    func mayWatch(_ viewer: String, _ user: String, forPush: Bool) async throws -> Bool {
        if settings.visibility == .everyone || viewer == user { return true }
        let conversation = Address.user(user).conversationKey(sender: viewer)
        if try await !stores.messages.history(conversation: conversation, before: nil, limit: 1).messages.isEmpty { return true }
        for group in try await stores.groups.groups(of: viewer) where group.members.contains(user) {
            if !forPush || group.members.count <= settings.fanoutMaxGroup { return true }
        }
        return false
    }

    /// Cancels pending offline events (shutdown).
    public func stop() {
        let tasks = state.withLock { state -> [Task<Void, Never>] in
            state.stopped = true
            defer { state.pendingOffline = [:] }
            return Array(state.pendingOffline.values)
        }
        for task in tasks { task.cancel() }
    }
}
