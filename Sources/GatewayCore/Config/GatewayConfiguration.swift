/// The whole `config.yaml`, typed. Keys are snake_case in YAML; every key has a default
/// except `pipeline`. Decoded by the config module, which reports unknown keys and invalid
/// values with the file, the YAML path and the line.
public struct GatewayConfiguration: Decodable, Sendable {
    public var node: NodeSettings
    public var listen: ListenSettings
    public var tls: TLSSettings?
    public var limits: LimitSettings
    public var store: StoreSettings
    public var presence: PresenceSettings
    public var longpoll: LongPollSettings
    public var logging: LoggingSettings
    public var debug: DebugSettings
    public var demo: DemoSettings
    /// `media:` (docs/MEDIA.md).
    public var media: MediaSettings
    /// `cluster:` (docs/SCALING.md).
    public var cluster: ClusterSettings
    public var pipeline: [PipelineEntry]

    enum CodingKeys: String, CodingKey {
        case node, listen, tls, limits, store, presence, longpoll, logging, debug, media, pipeline
        case demo
        case cluster
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        node = try c.decodeIfPresent(NodeSettings.self, forKey: .node) ?? NodeSettings()
        listen = try c.decodeIfPresent(ListenSettings.self, forKey: .listen) ?? ListenSettings()
        tls = try c.decodeIfPresent(TLSSettings.self, forKey: .tls)
        limits = try c.decodeIfPresent(LimitSettings.self, forKey: .limits) ?? LimitSettings()
        store = try c.decodeIfPresent(StoreSettings.self, forKey: .store) ?? StoreSettings()
        presence = try c.decodeIfPresent(PresenceSettings.self, forKey: .presence) ?? PresenceSettings()
        longpoll = try c.decodeIfPresent(LongPollSettings.self, forKey: .longpoll) ?? LongPollSettings()
        logging = try c.decodeIfPresent(LoggingSettings.self, forKey: .logging) ?? LoggingSettings()
        debug = try c.decodeIfPresent(DebugSettings.self, forKey: .debug) ?? DebugSettings()
        demo = try c.decodeIfPresent(DemoSettings.self, forKey: .demo) ?? DemoSettings()
        try demo.validate(publicHost: listen.public.host, codingPath: c.codingPath + [CodingKeys.demo])
        media = try c.decodeIfPresent(MediaSettings.self, forKey: .media) ?? MediaSettings()
        try media.validate(storeKind: store.kind, codingPath: c.codingPath + [CodingKeys.media])
        cluster = try c.decodeIfPresent(ClusterSettings.self, forKey: .cluster) ?? ClusterSettings()
        pipeline = try c.decode([PipelineEntry].self, forKey: .pipeline)
        if pipeline.isEmpty {
            throw DecodingError.dataCorrupted(.init(codingPath: c.codingPath + [CodingKeys.pipeline], debugDescription: "the pipeline needs at least one stage"))
        }
    }
}

/// Throws a "must be …" error at `key` when `condition` is false.
@inline(__always)
func require<K: CodingKey>(_ condition: Bool, _ container: KeyedDecodingContainer<K>, _ key: K, _ message: @autoclosure () -> String) throws {
    if !condition {
        throw DecodingError.dataCorruptedError(forKey: key, in: container, debugDescription: message())
    }
}

/// `node: { id, worker_id }`.
public struct NodeSettings: Codable, Sendable {
    /// Node name in `hello.node` and `/v1/discover`. Default `node-1`.
    public var id: String = "node-1"
    /// Snowflake worker id, 0...1023, unique per node. Default 1.
    public var workerID: Int = 1
    /// `worker_id: auto` (PostgreSQL store only): the node leases the lowest free worker id at
    /// start, and `workerID` is set to it then.
    public var workerIDAuto = false
    /// How long a node's lease in PostgreSQL lasts without renewal (renewed every third of it).
    /// Default 10000.
    public var leaseMs: Int = 10_000
    /// The base URL clients reach this node at (`https://chat-a.example.com`), advertised in a
    /// cluster for `/v1/discover` and long-poll hand-over; nil: built from `listen.public`'s
    /// host and bound port.
    public var publicURL: String?

    enum CodingKeys: String, CodingKey {
        case id
        case workerID = "worker_id"
        case leaseMs = "lease_ms"
        case publicURL = "public_url"
    }

    public init(id: String = "node-1", workerID: Int = 1) {
        self.id = id
        self.workerID = workerID
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        id = try c.decodeIfPresent(String.self, forKey: .id) ?? "node-1"
        try require(Address.isValidID(id), c, .id, "must be 1 to 64 characters of [A-Za-z0-9_.@-]")
        if (try? c.decodeIfPresent(String.self, forKey: .workerID)) == "auto" {
            workerIDAuto = true
        } else {
            workerID = try c.decodeIfPresent(Int.self, forKey: .workerID) ?? 1
            try require((0...1023).contains(workerID), c, .workerID, "must be 0...1023 (was \(workerID))")
        }
        leaseMs = try c.decodeIfPresent(Int.self, forKey: .leaseMs) ?? 10_000
        try require((1000...600_000).contains(leaseMs), c, .leaseMs, "must be 1000...600000 (was \(leaseMs))")
        publicURL = try c.decodeIfPresent(String.self, forKey: .publicURL)
        if let url = publicURL {
            try require(
                (url.hasPrefix("http://") || url.hasPrefix("https://")) && url.utf8.count <= 512 && !url.contains(where: \.isWhitespace), c,
                .publicURL, "must be an http:// or https:// base URL without spaces, at most 512 bytes")
        }
    }
}

/// `listen: { public: {host, port, allowed_origins}, admin: {host, port, token} }`.
public struct ListenSettings: Decodable, Sendable {
    public var `public`: PublicEndpoint = PublicEndpoint()
    public var admin: AdminEndpoint = AdminEndpoint()

    enum CodingKeys: String, CodingKey { case `public`, admin }

    public init() {}

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        `public` = try c.decodeIfPresent(PublicEndpoint.self, forKey: .public) ?? PublicEndpoint()
        admin = try c.decodeIfPresent(AdminEndpoint.self, forKey: .admin) ?? AdminEndpoint()
    }
}

public struct PublicEndpoint: Decodable, Sendable {
    public var host: String = "0.0.0.0"
    /// 0 picks a free port (tests).
    public var port: Int = 8080
    /// Browser origins allowed for WebSocket upgrades and CORS. Empty: every origin (a warning
    /// is logged at start).
    public var allowedOrigins: [String] = []
    /// Proxies (addresses or CIDRs, `10.0.0.0/8`, `::1`) whose `X-Forwarded-For` names the
    /// client for per-address caps, rate limits and logs. Empty: the header is never read.
    public var trustedProxies: [String] = []

    enum CodingKeys: String, CodingKey {
        case host, port
        case allowedOrigins = "allowed_origins"
        case trustedProxies = "trusted_proxies"
    }

    public init() {}

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        host = try c.decodeIfPresent(String.self, forKey: .host) ?? "0.0.0.0"
        port = try c.decodeIfPresent(Int.self, forKey: .port) ?? 8080
        try require((0...65535).contains(port), c, .port, "must be 0...65535 (was \(port))")
        allowedOrigins = try c.decodeIfPresent([String].self, forKey: .allowedOrigins) ?? []
        trustedProxies = try c.decodeIfPresent([String].self, forKey: .trustedProxies) ?? []
        for proxy in trustedProxies {
            try require(Self.isCIDR(proxy), c, .trustedProxies, "'\(proxy)' is not an IP address or CIDR (10.0.0.0/8, fd00::/8)")
        }
    }

    /// `a.b.c.d[/n]` or an IPv6 address `[/n]` (checked for shape; the server parses it).
    static func isCIDR(_ text: String) -> Bool {
        let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        let address = parts[0]
        let v4 = address.split(separator: ".", omittingEmptySubsequences: false)
        let isV4 = v4.count == 4 && v4.allSatisfy { UInt8($0) != nil }
        let isV6 = address.contains(":") && address.allSatisfy { $0.isHexDigit || $0 == ":" || $0 == "." }
        guard isV4 || isV6 else { return false }
        guard parts.count == 2 else { return true }
        guard let prefix = Int(parts[1]) else { return false }
        return (0...(isV4 ? 32 : 128)).contains(prefix)
    }
}

public struct AdminEndpoint: Decodable, Sendable {
    public var host: String = "127.0.0.1"
    public var port: Int = 9090
    /// Bearer token for the admin API. The gateway refuses to start with the admin listener
    /// beyond loopback and an empty or default token.
    public var token: Secret = Secret("change-me")
    /// The shortest admin token accepted off loopback.
    public static let minimumTokenBytes = 16

    enum CodingKeys: String, CodingKey { case host, port, token }

    public init() {}

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        host = try c.decodeIfPresent(String.self, forKey: .host) ?? "127.0.0.1"
        port = try c.decodeIfPresent(Int.self, forKey: .port) ?? 9090
        try require((0...65535).contains(port), c, .port, "must be 0...65535 (was \(port))")
        token = try c.decodeIfPresent(Secret.self, forKey: .token) ?? Secret("change-me")
        let weak = token.value.utf8.count < Self.minimumTokenBytes || token.isPublishedDefault
        try require(
            ListenerExposure(host: host) == .loopback || !weak, c, .token,
            "the admin listener is not on loopback (\(host)): set a token of your own, at least \(Self.minimumTokenBytes) characters (ADMIN_TOKEN)")
    }
}

/// `tls: { cert, key }`: PEM files; serves wss:// and https:// on the public port.
public struct TLSSettings: Decodable, Sendable {
    public var cert: String
    public var key: String
}

/// `limits`: the bounds of every queue and buffer.
public struct LimitSettings: Decodable, Sendable {
    /// Largest client frame (bytes). Larger: close 1009 (WebSocket), 413 (HTTP).
    public var maxFrameBytes: Int = 65536
    /// Frames queued to one session before it is a slow consumer (close 4008).
    public var outboundQueue: Int = 1024
    /// Time to send `auth` after a WebSocket upgrade without a token.
    public var authTimeoutMs: Int = 5000
    /// Time for a new connection's first request (or handshake) to arrive complete (slowloris).
    public var handshakeTimeoutMs: Int = 10000
    /// Time for an HTTP request to arrive whole after its head (a slow body is closed).
    public var requestTimeoutMs: Int = 60000
    /// Frames of one session waiting for the pipeline before the gateway stops reading it.
    public var inboundQueue: Int = 64
    /// Live sessions one user may hold on this node; more are refused (429).
    public var maxSessionsPerUser: Int = 32
    /// Connections this node accepts in all; more are refused (503).
    public var maxConnections: Int = 100_000
    /// Live sessions from one IP address; more are refused before the upgrade (429).
    public var maxConnectionsPerIP: Int = 10_000
    /// Messages waiting for the store before sends are refused with `unavailable`.
    public var maxPendingCommits: Int = 20_000
    /// Members a group may have.
    public var maxGroupMembers: Int = 500

    enum CodingKeys: String, CodingKey {
        case maxFrameBytes = "max_frame_bytes"
        case outboundQueue = "outbound_queue"
        case authTimeoutMs = "auth_timeout_ms"
        case handshakeTimeoutMs = "handshake_timeout_ms"
        case requestTimeoutMs = "request_timeout_ms"
        case inboundQueue = "inbound_queue"
        case maxSessionsPerUser = "max_sessions_per_user"
        case maxConnections = "max_connections"
        case maxConnectionsPerIP = "max_connections_per_ip"
        case maxPendingCommits = "max_pending_commits"
        case maxGroupMembers = "max_group_members"
    }

    public init() {}

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        maxFrameBytes = try c.decodeIfPresent(Int.self, forKey: .maxFrameBytes) ?? 65536
        try require((256...16_777_216).contains(maxFrameBytes), c, .maxFrameBytes, "must be 256...16777216 (was \(maxFrameBytes))")
        outboundQueue = try c.decodeIfPresent(Int.self, forKey: .outboundQueue) ?? 1024
        try require((1...1_000_000).contains(outboundQueue), c, .outboundQueue, "must be 1...1000000 (was \(outboundQueue))")
        authTimeoutMs = try c.decodeIfPresent(Int.self, forKey: .authTimeoutMs) ?? 5000
        try require((1...600_000).contains(authTimeoutMs), c, .authTimeoutMs, "must be 1...600000 (was \(authTimeoutMs))")
        handshakeTimeoutMs = try c.decodeIfPresent(Int.self, forKey: .handshakeTimeoutMs) ?? 10000
        try require((10...600_000).contains(handshakeTimeoutMs), c, .handshakeTimeoutMs, "must be 10...600000 (was \(handshakeTimeoutMs))")
        requestTimeoutMs = try c.decodeIfPresent(Int.self, forKey: .requestTimeoutMs) ?? 60000
        try require((100...3_600_000).contains(requestTimeoutMs), c, .requestTimeoutMs, "must be 100...3600000 (was \(requestTimeoutMs))")
        inboundQueue = try c.decodeIfPresent(Int.self, forKey: .inboundQueue) ?? 64
        try require((1...100_000).contains(inboundQueue), c, .inboundQueue, "must be 1...100000 (was \(inboundQueue))")
        maxSessionsPerUser = try c.decodeIfPresent(Int.self, forKey: .maxSessionsPerUser) ?? 32
        try require(maxSessionsPerUser >= 1, c, .maxSessionsPerUser, "must be at least 1 (was \(maxSessionsPerUser))")
        maxConnections = try c.decodeIfPresent(Int.self, forKey: .maxConnections) ?? 100_000
        try require(maxConnections >= 1, c, .maxConnections, "must be at least 1 (was \(maxConnections))")
        maxConnectionsPerIP = try c.decodeIfPresent(Int.self, forKey: .maxConnectionsPerIP) ?? 10_000
        try require(maxConnectionsPerIP >= 1, c, .maxConnectionsPerIP, "must be at least 1 (was \(maxConnectionsPerIP))")
        maxPendingCommits = try c.decodeIfPresent(Int.self, forKey: .maxPendingCommits) ?? 20_000
        try require(maxPendingCommits >= 1, c, .maxPendingCommits, "must be at least 1 (was \(maxPendingCommits))")
        maxGroupMembers = try c.decodeIfPresent(Int.self, forKey: .maxGroupMembers) ?? 500
        try require((2...100_000).contains(maxGroupMembers), c, .maxGroupMembers, "must be 2...100000 (was \(maxGroupMembers))")
    }
}

/// `store: { kind: sqlite, path, durability }`.
public struct StoreSettings: Decodable, Sendable {
    public enum Kind: String, Decodable, Sendable { case sqlite, postgres }
    public enum Durability: String, Codable, Sendable {
        /// Survives power loss (fsync on every group commit).
        case full
        /// Survives a process crash, not power loss.
        case relaxed
    }

    public var kind: Kind = .sqlite
    /// SQLite database file. Default `data/chat.db`.
    public var path: String = "data/chat.db"
    /// PostgreSQL URL (kind `postgres`).
    public var url: Secret?
    public var durability: Durability = .full
    /// Most connections to PostgreSQL (kind `postgres`). Default 16.
    public var poolSize: Int = 16
    /// How long one PostgreSQL operation (or opening a connection) may take before the store
    /// answers `unavailable` (kind `postgres`). Default 5000.
    public var timeoutMs: Int = 5000
    /// Commit batches a node keeps in flight at once (kind `postgres`; the embedded store
    /// commits one at a time). Default 2.
    public var commitsInFlight: Int = 2

    enum CodingKeys: String, CodingKey {
        case kind, path, url, durability
        case poolSize = "pool_size"
        case timeoutMs = "timeout_ms"
        case commitsInFlight = "commits_in_flight"
    }

    public init() {}

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        kind = try c.decodeIfPresent(Kind.self, forKey: .kind) ?? .sqlite
        path = try c.decodeIfPresent(String.self, forKey: .path) ?? "data/chat.db"
        url = try c.decodeIfPresent(Secret.self, forKey: .url)
        durability = try c.decodeIfPresent(Durability.self, forKey: .durability) ?? .full
        try require(kind != .postgres || url != nil, c, .url, "required when kind is postgres")
        poolSize = try c.decodeIfPresent(Int.self, forKey: .poolSize) ?? 16
        try require((1...1000).contains(poolSize), c, .poolSize, "must be 1...1000 (was \(poolSize))")
        timeoutMs = try c.decodeIfPresent(Int.self, forKey: .timeoutMs) ?? 5000
        try require((100...600_000).contains(timeoutMs), c, .timeoutMs, "must be 100...600000 (was \(timeoutMs))")
        commitsInFlight = try c.decodeIfPresent(Int.self, forKey: .commitsInFlight) ?? 2
        try require((1...8).contains(commitsInFlight), c, .commitsInFlight, "must be 1...8 (was \(commitsInFlight))")
    }
}

/// `presence`.
public struct PresenceSettings: Decodable, Sendable {
    public enum Visibility: String, Decodable, Sendable { case everyone, shared }

    /// How often clients must send something; told to them in `hello`.
    public var heartbeatMs: Int = 5000
    /// A session silent this long is closed and its user may go offline.
    public var offlineAfterMs: Int = 30000
    /// After the last session closes, wait this long before announcing offline.
    public var graceMs: Int = 2000
    /// Groups larger than this get no presence push.
    public var fanoutMaxGroup: Int = 100
    public var visibility: Visibility = .shared

    enum CodingKeys: String, CodingKey {
        case heartbeatMs = "heartbeat_ms"
        case offlineAfterMs = "offline_after_ms"
        case graceMs = "grace_ms"
        case fanoutMaxGroup = "fanout_max_group"
        case visibility
    }

    public init() {}

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        heartbeatMs = try c.decodeIfPresent(Int.self, forKey: .heartbeatMs) ?? 5000
        try require((10...600_000).contains(heartbeatMs), c, .heartbeatMs, "must be 10...600000 (was \(heartbeatMs))")
        offlineAfterMs = try c.decodeIfPresent(Int.self, forKey: .offlineAfterMs) ?? 30000
        try require(offlineAfterMs > heartbeatMs, c, .offlineAfterMs, "must be greater than heartbeat_ms (\(heartbeatMs))")
        graceMs = try c.decodeIfPresent(Int.self, forKey: .graceMs) ?? 2000
        try require(graceMs >= 0, c, .graceMs, "must be >= 0")
        fanoutMaxGroup = try c.decodeIfPresent(Int.self, forKey: .fanoutMaxGroup) ?? 100
        visibility = try c.decodeIfPresent(Visibility.self, forKey: .visibility) ?? .shared
    }
}

/// `longpoll`.
public struct LongPollSettings: Decodable, Sendable {
    /// A session with no poll for this long expires.
    public var sessionTTLMs: Int = 30000
    /// Long-poll sessions this node holds at most.
    public var maxSessions: Int = 10000

    enum CodingKeys: String, CodingKey {
        case sessionTTLMs = "session_ttl_ms"
        case maxSessions = "max_sessions"
    }

    public init() {}

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        sessionTTLMs = try c.decodeIfPresent(Int.self, forKey: .sessionTTLMs) ?? 30000
        try require(sessionTTLMs >= 100, c, .sessionTTLMs, "must be at least 100 (was \(sessionTTLMs))")
        maxSessions = try c.decodeIfPresent(Int.self, forKey: .maxSessions) ?? 10000
        try require(maxSessions >= 1, c, .maxSessions, "must be at least 1")
    }
}

/// `logging: { level }`: trace, debug, info, notice, warning, error, critical.
public struct LoggingSettings: Decodable, Sendable {
    public var level: String = "info"

    enum CodingKeys: String, CodingKey { case level }

    public init() {}

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        level = try c.decodeIfPresent(String.self, forKey: .level) ?? "info"
        let levels = ["trace", "debug", "info", "notice", "warning", "error", "critical"]
        try require(levels.contains(level), c, .level, "must be one of \(levels.joined(separator: ", ")) (was '\(level)')")
    }
}

/// `debug: { echo_endpoint }`.
public struct DebugSettings: Decodable, Sendable {
    /// Serve `/v1/echo`, a WebSocket echo with the same settings as `/v1/ws` (for conformance suites).
    public var echoEndpoint: Bool = false

    enum CodingKeys: String, CodingKey { case echoEndpoint = "echo_endpoint" }

    public init() {}

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        echoEndpoint = try c.decodeIfPresent(Bool.self, forKey: .echoEndpoint) ?? false
    }
}

/// One `pipeline:` item: `{stage, name?, on?, timeout_ms?, on_error?, settings?}`.
public struct PipelineEntry: Decodable, Sendable {
    public var stage: String
    /// Defaults to the kind; unique within the pipeline.
    public var name: String
    /// Frame kinds the stage sees. Default `[send]`.
    public var on: Set<FrameKind>
    /// The stage's deadline per frame (`StagePolicy`); nil: the kind's default (none for most).
    public var timeoutMs: Int?
    /// What a failure of the stage means for the frame; nil: the kind's default (`reject`).
    public var onError: StagePolicy.OnError?
    public var settings: any SettingsSource

    enum CodingKeys: String, CodingKey {
        case stage, name, on, settings
        case timeoutMs = "timeout_ms"
        case onError = "on_error"
    }

    public init(
        stage: String, name: String? = nil, on: Set<FrameKind> = [.send], timeoutMs: Int? = nil, onError: StagePolicy.OnError? = nil,
        settings: any SettingsSource
    ) {
        self.stage = stage
        self.name = name ?? stage
        self.on = on
        self.timeoutMs = timeoutMs
        self.onError = onError
        self.settings = settings
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let kind = try c.decode(String.self, forKey: .stage)
        if let kinds = decoder.userInfo[.gatewayStageKinds] as? Set<String>, !kinds.contains(kind) {
            let suggestion = Self.closestKind(to: kind, among: kinds).map { " (did you mean '\($0)'?)" } ?? ""
            throw DecodingError.dataCorruptedError(
                forKey: .stage, in: c, debugDescription: "unknown stage kind '\(kind)'\(suggestion); known: \(kinds.sorted().joined(separator: ", "))")
        }
        stage = kind
        name = try c.decodeIfPresent(String.self, forKey: .name) ?? stage
        let kinds = try c.decodeIfPresent([FrameKind].self, forKey: .on) ?? [.send]
        try require(!kinds.isEmpty, c, .on, "must list at least one frame type")
        let allowed: Set<FrameKind> = [.send, .typing, .read, .presenceSubscribe, .delivered]
        try require(kinds.allSatisfy(allowed.contains), c, .on, "may list send, typing, read, presence.subscribe, delivered")
        on = Set(kinds)
        timeoutMs = try c.decodeIfPresent(Int.self, forKey: .timeoutMs)
        if let timeoutMs {
            try require(StagePolicy.timeoutRange.contains(timeoutMs), c, .timeoutMs, "must be 1...600000 (was \(timeoutMs))")
        }
        if let name = try c.decodeIfPresent(String.self, forKey: .onError) {
            guard let onError = StagePolicy.OnError(rawValue: name) else {
                throw DecodingError.dataCorruptedError(forKey: .onError, in: c, debugDescription: "must be reject or continue (was '\(name)')")
            }
            self.onError = onError
        } else {
            onError = nil
        }
        guard let capturing = decoder as? any SettingsCapturingDecoder else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "settings need the gateway's config decoder"))
        }
        settings = try capturing.settingsSource(forKey: CodingKeys.settings.stringValue)
    }

    /// The known kind sharing the longest prefix with a misspelt one (at least two characters;
    /// custom kinds share their owner prefix, so `acme.nocap` finds `acme.nocaps`).
    static func closestKind(to kind: String, among kinds: Set<String>) -> String? {
        var best: (kind: String, shared: Int)?
        for candidate in kinds.sorted() {
            let shared = zip(candidate, kind).prefix { $0 == $1 }.count
            if shared >= 2, shared > (best?.shared ?? 0) { best = (candidate, shared) }
        }
        return best?.kind
    }
}

/// A decoder that can hand out a stage's `settings:` block undecoded, to be decoded later
/// by the stage's factory into its own type (the config module's YAML decoder is one).
public protocol SettingsCapturingDecoder: Decoder {
    func settingsSource(forKey key: String) throws -> any SettingsSource
}

extension CodingUserInfoKey {
    /// The stage kinds the registry knows (`Set<String>`): with it, a pipeline entry naming
    /// another kind fails at its YAML line.
    public static let gatewayStageKinds = CodingUserInfoKey(rawValue: "gateway.stageKinds")!
}
