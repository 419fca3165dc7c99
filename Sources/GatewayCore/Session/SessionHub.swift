import Atomics
import NIOCore
import Synchronization

/// The live sessions on this node, by user: who is online and where to deliver.
public final class SessionHub: PresenceQuery, Sendable {
    /// Guards the map of user → live sessions.
    private let sessions = Mutex<[String: UserSessions]>([:])
    private let websocketCount = ManagedAtomic<Int>(0)
    private let longpollCount = ManagedAtomic<Int>(0)
    private let maxSessionsPerUser: Int
    private let maxConnectionsPerIP: Int
    /// Guards the number of live sessions per peer address.
    private let perIP = Mutex<[String: Int]>([:])
    /// Guards the observer told when a user's first session opens and last one closes.
    /// (A box, not the closure itself: reading a closure out of a `Mutex` re-wraps it in a new
    /// thunk on every read, so a chain grew with each session and each call walked all of it.)
    private let observer = Mutex<OnlineObserver?>(nil)

    private final class OnlineObserver: Sendable {
        let call: @Sendable (_ user: String, _ online: Bool) -> Void
        init(_ call: @escaping @Sendable (String, Bool) -> Void) { self.call = call }
    }

    /// `limits.max_connections` is not the hub's: the transport admits sockets and long-poll
    /// sessions under it (`ConnectionAdmission`) before any session is registered.
    public init(maxSessionsPerUser: Int, maxConnectionsPerIP: Int = .max) {
        self.maxSessionsPerUser = maxSessionsPerUser
        self.maxConnectionsPerIP = maxConnectionsPerIP
    }

    /// Whether a peer address may open another session (checked before a WebSocket upgrade).
    public func canOpen(fromAddress address: String?) -> Bool {
        guard let address else { return true }
        return perIP.withLock { ($0[address] ?? 0) < maxConnectionsPerIP }
    }

    /// Sets who is told when a user's first session opens (true) and last one closes (false).
    public func setOnlineObserver(_ observer: (@Sendable (String, Bool) -> Void)?) {
        let box = observer.map(OnlineObserver.init)
        self.observer.withLock { $0 = box }
    }

    private func tellObserver(_ user: String, online: Bool) {
        observer.withLock { $0 }?.call(user, online)
    }


    public var connectionCount: Int {
        websocketCount.load(ordering: .relaxed) + longpollCount.load(ordering: .relaxed)
    }

    public func count(of transport: TransportKind) -> Int {
        switch transport {
        case .websocket: websocketCount.load(ordering: .relaxed)
        case .longpoll: longpollCount.load(ordering: .relaxed)
        case .http: 0
        }
    }

    /// Whether `user` may open another session (checked before a WebSocket upgrade).
    public func canOpen(user: String) -> Bool {
        sessions.withLock { ($0[user]?.count ?? 0) < maxSessionsPerUser }
    }

    /// Adds a session; refuses past the per-user and per-address caps, whatever the transport.
    public func register(_ session: Session) throws(GatewayError) {
        let address = session.principal.remoteAddress
        if let address {
            let admitted = perIP.withLock { counts -> Bool in
                let used = counts[address] ?? 0
                guard used < maxConnectionsPerIP else { return false }
                counts[address] = used + 1
                return true
            }
            guard admitted else {
                throw GatewayError(.rateLimited, "too many connections from this address (\(maxConnectionsPerIP))", retryAfterMs: 5000)
            }
        }
        let result: Result<Bool, GatewayError> = sessions.withLock { map in
            guard (map[session.user]?.count ?? 0) < maxSessionsPerUser else {
                return .failure(GatewayError(.rateLimited, "too many sessions for this user (\(maxSessionsPerUser))", retryAfterMs: 5000))
            }
            guard map[session.user]?.append(session) != nil else {
                map[session.user] = .one(session)
                return .success(true)
            }
            return .success(false)
        }
        let first: Bool
        do {
            first = try result.get()
        } catch {
            if let address { releaseAddress(address) }
            throw error
        }
        counter(for: session.principal.transport)?.wrappingIncrement(ordering: .relaxed)
        if first { tellObserver(session.user, online: true) }
    }

    /// Removes a session (idempotent).
    public func unregister(_ session: Session) {
        let (removed, last): (Bool, Bool) = sessions.withLock { map in
            switch map[session.user] {
            case .one(let only)? where only === session:
                map[session.user] = nil
                return (true, true)
            case .many(var list)?:
                guard let index = list.firstIndex(where: { $0 === session }) else { return (false, false) }
                list.remove(at: index)
                map[session.user] = list.count == 1 ? .one(list[0]) : .many(list)
                return (true, false)
            default:
                return (false, false)
            }
        }
        guard removed else { return }
        if let address = session.principal.remoteAddress { releaseAddress(address) }
        counter(for: session.principal.transport)?.wrappingDecrement(ordering: .relaxed)
        if last { tellObserver(session.user, online: false) }
    }

    private func releaseAddress(_ address: String) {
        perIP.withLock { counts in
            let left = (counts[address] ?? 1) - 1
            counts[address] = left > 0 ? left : nil
        }
    }

    /// Addresses with at least one live session (a closed session leaves none behind).
    public var trackedAddressCount: Int { perIP.withLock { $0.count } }

    private func counter(for transport: TransportKind) -> ManagedAtomic<Int>? {
        switch transport {
        case .websocket: websocketCount
        case .longpoll: longpollCount
        case .http: nil
        }
    }

    public func sessions(of user: String) -> [Session] {
        sessions.withLock { $0[user].map(Array.init) ?? [] }
    }

    public func isOnline(_ user: String) -> Bool {
        sessions.withLock { $0[user] != nil }
    }

    public var onlineUserCount: Int {
        sessions.withLock { $0.count }
    }

    public func allSessions() -> [Session] {
        sessions.withLock { map in
            var all: [Session] = []
            all.reserveCapacity(map.count)
            for list in map.values { all.append(contentsOf: list) }
            return all
        }
    }

    /// The live sessions over `transport` for which `predicate` holds. The walk holds the hub's
    /// lock: keep `predicate` cheap (an atomic load, a comparison).
    public func sessions(over transport: TransportKind, where predicate: (Session) -> Bool) -> [Session] {
        sessions.withLock { map in
            var found: [Session] = []
            for list in map.values {
                for session in list where session.principal.transport == transport && predicate(session) {
                    found.append(session)
                }
            }
            return found
        }
    }

    /// Sends a frame to every live session of `user` except `exceptSession`; the frame is built
    /// only if there is someone to send it to. Returns the number of sessions reached.
    @discardableResult
    public func deliver(to user: String, exceptSession: String? = nil, frame: () -> ByteBuffer) -> Int {
        let targets = sessions.withLock { $0[user] }
        guard let targets, !targets.isEmpty else { return 0 }
        var built: ByteBuffer?
        var reached = 0
        for session in targets where session.id != exceptSession {
            let bytes = built ?? frame()
            built = bytes
            if session.connection.send(bytes) {
                reached += 1
            } else {
                session.connection.close(code: .slowConsumer, reason: "outbound queue full")
            }
        }
        return reached
    }
}

/// One user's live sessions. Most users have one, held without an array: an allocation less
/// per connected user.
enum UserSessions: RandomAccessCollection, Sendable {
    case one(Session)
    /// Two or more.
    case many([Session])

    var startIndex: Int { 0 }

    var endIndex: Int {
        switch self {
        case .one: 1
        case .many(let list): list.count
        }
    }

    subscript(position: Int) -> Session {
        switch self {
        case .one(let session):
            precondition(position == 0, "index out of range")
            return session
        case .many(let list):
            return list[position]
        }
    }

    mutating func append(_ session: Session) {
        switch self {
        case .one(let first):
            self = .many([first, session])
        case .many(var list):
            self = .many([])  // the array's only reference is now `list`: appended in place
            list.append(session)
            self = .many(list)
        }
    }
}
