import Foundation

/// The workloads `chatgate bench` knows.
public enum BenchScenario: String, CaseIterable, Sendable {
    /// P sender→receiver pairs, 1:1, each sender with W unacked messages (or a fixed total rate).
    case relay
    /// G groups of S members, 2 senders per group with a window each.
    case fanout
    /// N authenticated, idle WebSocket connections with heartbeats: memory, handshakes, idle CPU.
    case idle
    /// WebSocket senders, long-poll receivers.
    case longpoll
    /// N connected clients dropped at once by a gateway restart, reconnecting and syncing.
    case storm
    /// `relay` against the store's strictest durability and against the relaxed one.
    case durable
    /// N authenticated WebSocket connections opened and closed in waves: server memory growth
    /// per 1,000 closed connections (a leak shows as growth; none is allocator noise).
    case churn
    /// The media store in process: upload/download MiB/s, compression, thumbnails/s (MediaBench.swift).
    case media
    /// P sender→receiver pairs, 1:1, every sender sending one message at the same instant every
    /// `burstIntervalMs` (100 pairs: 500 msgs/s in bursts of 100).
    case burst
}

/// Everything a bench run needs, validated before anything starts.
///
/// Options a scenario does not use are refused rather than ignored, so a figure is never
/// published with a setting that silently did nothing.
public struct BenchParameters: Sendable, Equatable {
    /// The workload.
    public var scenario: BenchScenario
    /// Measured seconds.
    public var duration: Double = 10
    /// Seconds of load before the measurement starts (not counted).
    public var warmup: Double = 3
    /// Connections (`idle`, `storm`). Default 10,000.
    public var connections: Int?
    /// Sender/receiver pairs (`relay`, `durable`, `longpoll`). Default 100.
    public var pairs: Int?
    /// Unacked messages per sender. Default 10.
    public var window: Int?
    /// A fixed total send rate (msgs/s) instead of the window; `storm` default 1,000.
    public var rate: Double?
    /// Groups (`fanout`). Default 10.
    public var groups: Int?
    /// Members per group (`fanout`). Default 20.
    public var groupSize: Int?
    /// `fanout`: also measure a gateway that serves the groups fanout-on-read (docs/GROUPS.md).
    public var fanoutOnRead = false
    /// Bytes of each message's `body` JSON. Default 100.
    public var bodyBytes: Int = 100
    /// A running gateway's WebSocket URL (`ws://host:port/v1/ws`) instead of a child gateway.
    public var url: String?
    /// The HS256 secret of `url`'s auth stage, to mint tokens.
    public var jwtSecret: String?
    /// Where to write the JSON report.
    public var jsonPath: String?
    /// The `chatgate` executable to launch (gateway and baseline children).
    public var binary: String?
    /// Pin the server to CPU 0 and the generator to CPU 1; nil: when `taskset` exists and there are 2+ cores.
    public var taskset: Bool?
    /// Repetitions of the gateway/baseline pair; the report gives medians.
    public var runs: Int = 1
    /// Skip the raw relay baseline (quick checks only; the report then has no ratio).
    public var skipBaseline = false
    /// Progress lines on stderr.
    public var verbose = true
    /// `relay`: also measure one gateway and two gateways on PostgreSQL (BenchPostgres.swift).
    public var postgres = false
    /// The PostgreSQL server for `postgres` (a URL whose user may create databases); nil: the
    /// bench starts a private one.
    public var databaseURL: String?
    /// With `postgres`: the nodes' `store.commits_in_flight`; nil: the gateway's default.
    public var commitsInFlight: Int?

    /// The defaults of `scenario`, which match the peers' workloads.
    public init(scenario: BenchScenario) {
        self.scenario = scenario
    }

    // MARK: Effective values

    /// `pairs`, or its default.
    public var effectivePairs: Int { pairs ?? 100 }
    /// `window`, or its default.
    public var effectiveWindow: Int { window ?? 10 }
    /// `groups`, or its default.
    public var effectiveGroups: Int { groups ?? 10 }
    /// `groupSize`, or its default.
    public var effectiveGroupSize: Int { groupSize ?? 20 }
    /// `connections` as asked, or its default (the run caps it by the open-files limit).
    public var effectiveConnections: Int { connections ?? (scenario == .churn ? 100_000 : 10_000) }
    /// `storm` always sends at a fixed rate: a light load that is in flight when the gateway dies.
    public var effectiveRate: Double? { scenario == .storm ? (rate ?? 1_000) : rate }
    /// `fanout --fanout-on-read`: the `fanout` stage's `fanout_on_read_above` of the extra
    /// gateway (its smallest value), so that every group of the run is served fanout-on-read.
    public static let fanoutOnReadAbove = 2

    /// `burst`: every sender sends one message at the same instant this often.
    public static let burstIntervalMs = 200

    /// Senders per group in `fanout`.
    public static let sendersPerGroup = 2

    /// The options each scenario reads; any other option given is an error.
    static func accepted(_ scenario: BenchScenario) -> Set<String> {
        switch scenario {
        case .relay, .durable, .longpoll: ["--pairs", "--window", "--rate", "--body-bytes"]
        case .fanout: ["--groups", "--group-size", "--window", "--rate", "--body-bytes", "--fanout-on-read"]
        case .idle, .churn: ["--connections"]
        case .storm: ["--connections", "--rate", "--body-bytes"]
        case .media: ["--runs"]
        case .burst: ["--pairs", "--body-bytes"]
        }
    }

    /// Checks every value; the error names the option, the allowed range and what was given.
    public func validate() throws(BenchError) {
        var given: [String] = []
        if connections != nil { given.append("--connections") }
        if pairs != nil { given.append("--pairs") }
        if window != nil { given.append("--window") }
        if rate != nil { given.append("--rate") }
        if groups != nil { given.append("--groups") }
        if groupSize != nil { given.append("--group-size") }
        if fanoutOnRead { given.append("--fanout-on-read") }
        if bodyBytes != 100 { given.append("--body-bytes") }
        let accepted = Self.accepted(scenario)
        for option in given where !accepted.contains(option) {
            let users = BenchScenario.allCases.filter { Self.accepted($0).contains(option) }.map(\.rawValue)
            throw BenchError("\(option) does not apply to '\(scenario.rawValue)' (it is for \(users.joined(separator: ", ")))")
        }
        try Self.check(duration.isFinite && duration > 0 && duration <= 3600, "--duration must be > 0 and at most 3600 seconds (was \(duration))")
        try Self.check(warmup.isFinite && warmup >= 0 && warmup <= 600, "--warmup must be 0...600 seconds (was \(warmup))")
        if let pairs { try Self.check((1...50_000).contains(pairs), "--pairs must be 1...50000 (was \(pairs))") }
        if let window { try Self.check((1...10_000).contains(window), "--window must be 1...10000 (was \(window))") }
        if let rate { try Self.check(rate.isFinite && rate > 0 && rate <= 10_000_000, "--rate must be > 0 msgs/s and at most 10000000 (was \(rate))") }
        if let groups { try Self.check((1...10_000).contains(groups), "--groups must be 1...10000 (was \(groups))") }
        if let groupSize {
            try Self.check((Self.sendersPerGroup...500).contains(groupSize), "--group-size must be \(Self.sendersPerGroup)...500 (was \(groupSize))")
        }
        if fanoutOnRead {
            try Self.check(
                effectiveGroupSize > Self.fanoutOnReadAbove,
                "--fanout-on-read needs groups of more than \(Self.fanoutOnReadAbove) members (--group-size was \(effectiveGroupSize))")
        }
        if let connections {
            let minimum = scenario == .storm ? 2 : 1
            try Self.check((minimum...1_000_000).contains(connections), "--connections must be \(minimum)...1000000 (was \(connections))")
        }
        try Self.check((64...60_000).contains(bodyBytes), "--body-bytes must be 64...60000 (was \(bodyBytes))")
        try Self.check((1...20).contains(runs), "--runs must be 1...20 (was \(runs))")
        if let url {
            guard TargetURL(url) != nil else {
                throw BenchError("--url must look like ws://HOST:PORT/v1/ws (was \(url))")
            }
            try Self.check(jwtSecret != nil, "--url needs --jwt-secret (the HS256 secret of that gateway's auth stage) to mint tokens")
            try Self.check(scenario != .storm, "storm restarts the gateway, so it cannot target --url")
            try Self.check(scenario != .durable, "durable changes the gateway's store durability, so it cannot target --url")
        }
        if let jwtSecret {
            try Self.check(url != nil, "--jwt-secret is for --url (a child gateway gets a fresh secret)")
            try Self.check(jwtSecret.utf8.count >= 32, "--jwt-secret must be at least 32 bytes (was \(jwtSecret.utf8.count))")
        }
        if let binary {
            try Self.check(FileManager.default.isExecutableFile(atPath: binary), "--binary \(binary) is not an executable file")
        }
        if let databaseURL {
            try Self.check(postgres, "--database-url is for --postgres")
            try Self.check(
                databaseURL.hasPrefix("postgres://") || databaseURL.hasPrefix("postgresql://"),
                "--database-url must be a postgres:// URL (was \(databaseURL))")
        }
        if let commitsInFlight {
            try Self.check(postgres, "--commits-in-flight is for --postgres")
            try Self.check((1...8).contains(commitsInFlight), "--commits-in-flight must be 1...8 (was \(commitsInFlight))")
        }
        if postgres {
            try Self.check(scenario == .relay, "--postgres applies to 'relay' only (was '\(scenario.rawValue)')")
            try Self.check(url == nil, "--postgres starts its own gateways, so it cannot target --url")
        }
    }

    private static func check(_ condition: Bool, _ message: @autoclosure () -> String) throws(BenchError) {
        if !condition { throw BenchError(message()) }
    }
}

/// A bench failure with a message for the terminal.
public struct BenchError: Error, CustomStringConvertible, Sendable, Equatable {
    /// What went wrong, for the terminal.
    public let message: String

    /// An error with `message`.
    public init(_ message: String) {
        self.message = message
    }

    /// The message.
    public var description: String { message }
}

/// `ws://host:port/path`, split.
struct TargetURL: Sendable, Equatable {
    var host: String
    var port: Int
    var path: String

    init(host: String, port: Int, path: String = "/v1/ws") {
        self.host = host
        self.port = port
        self.path = path
    }

    init?(_ text: String) {
        guard let components = URLComponents(string: text), components.scheme == "ws",
            let host = components.host, !host.isEmpty, let port = components.port, (1...65535).contains(port)
        else { return nil }
        self.host = host
        self.port = port
        self.path = components.path.isEmpty ? "/v1/ws" : components.path
    }
}
