import Foundation
import StageAuth
import Synchronization

/// Which server a measurement runs against.
enum ServerKind: Sendable, Equatable {
    /// A `chatgate serve` child on a fresh temporary config and store; with
    /// `fanoutOnReadAbove`, its `fanout` stage serves larger groups fanout-on-read.
    case gateway(durability: String, fanoutOnReadAbove: Int? = nil)
    /// The raw relay baseline child (`chatgate bench --serve-baseline`).
    case baseline
    /// A gateway someone else runs (`--url`).
    case external(TargetURL, secret: String)
    /// `nodes` `chatgate serve` children on one fresh PostgreSQL database (`--postgres`),
    /// durability full; with 2+ nodes each relay pair is on one node (BenchPostgres.swift).
    case postgres(nodes: Int)

    var label: String {
        switch self {
        case .gateway(_, let above?): "gateway (fanout-on-read above \(above))"
        case .gateway(let durability, nil): durability == "full" ? "gateway" : "gateway (\(durability))"
        case .baseline: "baseline"
        case .external: "gateway (--url)"
        case .postgres(let nodes): nodes == 1 ? "gateway on PostgreSQL" : "\(nodes) gateways on one PostgreSQL"
        }
    }
}

/// A running server to measure: where it listens, its process (unless external), and how to
/// restart it on the same port and data (`storm`).
final class ServerUnderTest: Sendable {
    let kind: ServerKind
    let binary: String
    let cpu: Int?
    let directory: URL?
    let secret: String
    private let state: LockedChild
    /// The further nodes of a `.postgres` server, each with its target (after `target`).
    let moreNodes: [(child: ChildProcess, target: TargetURL)]
    /// The PostgreSQL database of a `.postgres` server, dropped by `stop`.
    let database: (server: BenchPostgres, url: String)?

    var target: TargetURL { state.target }
    var child: ChildProcess? { state.child }
    /// Every node's target, `target` first.
    var targets: [TargetURL] { [target] + moreNodes.map(\.target) }

    private init(
        kind: ServerKind, binary: String, cpu: Int?, directory: URL?, secret: String, child: ChildProcess?, target: TargetURL,
        moreNodes: [(child: ChildProcess, target: TargetURL)] = [], database: (server: BenchPostgres, url: String)? = nil
    ) {
        self.kind = kind
        self.binary = binary
        self.cpu = cpu
        self.directory = directory
        self.secret = secret
        self.state = LockedChild(child: child, target: target)
        self.moreNodes = moreNodes
        self.database = database
    }

    /// CPU and memory of every node together (nil when not a child process).
    func sample() -> ProcessSample? {
        guard var total = child?.sample() else { return nil }
        for node in moreNodes {
            guard let sample = node.child.sample() else { return nil }
            total.rssBytes += sample.rssBytes
            total.cpuSeconds += sample.cpuSeconds
        }
        return total
    }

    /// Starts the server (or connects nothing, for `--url`) and waits until it listens.
    static func start(
        _ kind: ServerKind, binary: String, cpu: Int?, postgres: BenchPostgres? = nil, commitsInFlight: Int? = nil
    ) async throws -> ServerUnderTest {
        switch kind {
        case .postgres(let nodes):
            guard let postgres else { throw BenchError("no PostgreSQL server for \(kind.label)") }
            return try await startOnPostgres(nodes: nodes, postgres: postgres, binary: binary, cpu: cpu, commitsInFlight: commitsInFlight)
        case .external(let target, let secret):
            return ServerUnderTest(kind: kind, binary: binary, cpu: nil, directory: nil, secret: secret, child: nil, target: target)
        case .baseline:
            let child = try ChildProcess.launch(
                binary: binary, arguments: ["bench", "--serve-baseline", "--port", "0"], cpu: cpu, ready: Self.baselinePort)
            let ports: (public: Int, admin: Int?)
            do {
                ports = try await child.waitUntilListening(timeout: 30)
            } catch {
                await child.stop()
                throw error
            }
            return ServerUnderTest(
                kind: kind, binary: binary, cpu: cpu, directory: nil, secret: Self.randomSecret(), child: child,
                target: TargetURL(host: "127.0.0.1", port: ports.public))
        case .gateway(let durability, let fanoutOnReadAbove):
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("chatgate-bench-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            let secret = Self.randomSecret()
            try Self.writeConfig(directory: directory, port: 0, secret: secret, durability: durability, fanoutOnReadAbove: fanoutOnReadAbove)
            do {
                let (child, port) = try await Self.launchGateway(binary: binary, directory: directory, cpu: cpu)
                // A restart must come back on the same port: pin it in the config now.
                try Self.writeConfig(directory: directory, port: port, secret: secret, durability: durability, fanoutOnReadAbove: fanoutOnReadAbove)
                return ServerUnderTest(
                    kind: kind, binary: binary, cpu: cpu, directory: directory, secret: secret, child: child,
                    target: TargetURL(host: "127.0.0.1", port: port))
            } catch {
                try? FileManager.default.removeItem(at: directory)
                throw error
            }
        }
    }

    private static func launchGateway(binary: String, directory: URL, cpu: Int?) async throws -> (ChildProcess, Int) {
        let child = try ChildProcess.launch(
            binary: binary, arguments: ["serve", "--config", directory.appendingPathComponent("bench.yaml").path], cpu: cpu,
            environment: ["LOG_LEVEL": "info"], ready: Self.gatewayPorts)
        do {
            return (child, try await child.waitUntilListening(timeout: 60).public)
        } catch {
            await child.stop()
            throw error
        }
    }

    /// Stops the server (SIGTERM, then SIGKILL after 10 s) and starts it again on the same port
    /// and data directory. Returns the seconds from the signal until it listens again, and
    /// whether it had to be killed.
    func restart(onStopped: @Sendable () async -> Void) async throws -> (seconds: Double, killed: Bool) {
        guard let child, let directory else { throw BenchError("\(kind.label) cannot be restarted") }
        let start = MonotonicClock.nanos()
        let killed = await child.stop()
        await onStopped()
        let next: ChildProcess
        switch kind {
        case .gateway:
            next = try await Self.launchGateway(binary: binary, directory: directory, cpu: cpu).0
        default:
            throw BenchError("\(kind.label) cannot be restarted")
        }
        state.replace(child: next)
        return (Double(MonotonicClock.nanos() - start) / 1e9, killed)
    }

    /// Restarts the baseline on its port (it keeps nothing, so there is no data to reuse).
    func restartBaseline(onStopped: @Sendable () async -> Void) async throws -> (seconds: Double, killed: Bool) {
        guard let child else { throw BenchError("\(kind.label) cannot be restarted") }
        let start = MonotonicClock.nanos()
        let killed = await child.stop()
        await onStopped()
        let next = try ChildProcess.launch(
            binary: binary, arguments: ["bench", "--serve-baseline", "--port", String(target.port)], cpu: cpu, ready: Self.baselinePort)
        _ = try await next.waitUntilListening(timeout: 30)
        state.replace(child: next)
        return (Double(MonotonicClock.nanos() - start) / 1e9, killed)
    }

    /// Stops the children and removes their data (and database).
    func stop() async {
        await child?.stop()
        for node in moreNodes { await node.child.stop() }
        if let database { database.server.dropDatabase(database.url) }
        if let directory { try? FileManager.default.removeItem(at: directory) }
    }

    /// `nodes` gateways on a fresh database of `postgres`, each with its own config (node id,
    /// worker id `auto`, port), started one after the other (the first applies the migrations).
    private static func startOnPostgres(
        nodes: Int, postgres: BenchPostgres, binary: String, cpu: Int?, commitsInFlight: Int?
    ) async throws -> ServerUnderTest {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("chatgate-bench-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let url: String
        do {
            url = try postgres.createDatabase()
        } catch {
            try? FileManager.default.removeItem(at: directory)
            throw error
        }
        let secret = randomSecret()
        var started: [(child: ChildProcess, target: TargetURL)] = []
        do {
            for node in 0..<nodes {
                let nodeDirectory = directory.appendingPathComponent("node\(node)")
                try FileManager.default.createDirectory(at: nodeDirectory, withIntermediateDirectories: true)
                let inFlight = commitsInFlight.map { ", commits_in_flight: \($0)" } ?? ""
                let store = "store: { kind: postgres, url: \"\(url)\", pool_size: 16, durability: full\(inFlight) }\n"
                    + "media: { dir: \"\(directory.appendingPathComponent("media").path)\", shared_dir: true }"
                let text = configText(directory: nodeDirectory, port: 0, secret: secret, durability: "full")
                    .replacingOccurrences(of: "node: { id: bench-node, worker_id: 1 }", with: "node: { id: bench-node-\(node), worker_id: auto }")
                    .split(separator: "\n", omittingEmptySubsequences: false)
                    .map { $0.hasPrefix("store:") ? store : String($0) }
                    .joined(separator: "\n")
                try text.write(to: nodeDirectory.appendingPathComponent("bench.yaml"), atomically: true, encoding: .utf8)
                let (child, port) = try await launchGateway(binary: binary, directory: nodeDirectory, cpu: cpu)
                started.append((child, TargetURL(host: "127.0.0.1", port: port)))
            }
        } catch {
            for node in started { await node.child.stop() }
            postgres.dropDatabase(url)
            try? FileManager.default.removeItem(at: directory)
            throw error
        }
        let first = started.removeFirst()
        return ServerUnderTest(
            kind: .postgres(nodes: nodes), binary: binary, cpu: cpu, directory: directory, secret: secret, child: first.child,
            target: first.target, moreNodes: started, database: (postgres, url))
    }

    /// An HS256 token for `user`, valid for two hours.
    func token(for user: String) async throws -> String {
        try await AuthStageFactory.mintHS256(
            secret: secret, user: user, ttlSeconds: 7200, now: Int64(Date().timeIntervalSince1970 * 1000), issuer: nil, audience: nil)
    }

    /// Tokens for many users, minted by a few tasks at once.
    func tokens(for users: [String]) async throws -> [String] {
        try await withThrowingTaskGroup(of: (Int, [String]).self) { group in
            let chunk = max(1, (users.count + 7) / 8)
            for start in stride(from: 0, to: users.count, by: chunk) {
                let slice = Array(users[start..<min(users.count, start + chunk)])
                group.addTask {
                    var minted: [String] = []
                    minted.reserveCapacity(slice.count)
                    for user in slice { minted.append(try await self.token(for: user)) }
                    return (start, minted)
                }
            }
            var result = [String](repeating: "", count: users.count)
            for try await (start, minted) in group {
                result.replaceSubrange(start..<start + minted.count, with: minted)
            }
            return result
        }
    }

    // MARK: Config and readiness

    /// The bench's gateway config: `config.yaml`'s defaults and default pipeline, on loopback,
    /// with a fresh store and secret. `max_pending_commits` and the connection limits are the
    /// defaults too: the bench measures what a user gets.
    static func configText(directory: URL, port: Int, secret: String, durability: String, fanoutOnReadAbove: Int? = nil) -> String {
        let fanoutSettings = fanoutOnReadAbove.map { "\n    settings: { fanout_on_read_above: \($0) }" } ?? ""
        return """
        # Written by `chatgate bench` for one run.
        node: { id: bench-node, worker_id: 1 }
        listen:
          public: { host: 127.0.0.1, port: \(port), allowed_origins: [] }
          admin:  { host: 127.0.0.1, port: 0, token: "\(secret)" }
        limits: { max_frame_bytes: 65536, outbound_queue: 1024, auth_timeout_ms: 5000 }
        store: { kind: sqlite, path: "\(directory.appendingPathComponent("chat.db").path)", durability: \(durability) }
        presence: { heartbeat_ms: 5000, offline_after_ms: 30000 }
        longpoll: { session_ttl_ms: 30000 }
        logging: { level: info }
        pipeline:
          - stage: auth
            settings: { hs256_secret: "\(secret)", leeway_s: 30 }
          - stage: id
          - stage: persist
          - stage: fanout\(fanoutSettings)

        """
    }

    private static func writeConfig(directory: URL, port: Int, secret: String, durability: String, fanoutOnReadAbove: Int?) throws {
        let text = configText(directory: directory, port: port, secret: secret, durability: durability, fanoutOnReadAbove: fanoutOnReadAbove)
        try text.write(to: directory.appendingPathComponent("bench.yaml"), atomically: true, encoding: .utf8)
    }

    static func randomSecret() -> String {
        let alphabet = Array("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
        return String((0..<48).map { _ in alphabet.randomElement()! })
    }

    /// `… admin=127.0.0.1:9090 public=127.0.0.1:8080 [chatgate] listening`.
    @Sendable static func gatewayPorts(_ line: String) -> (public: Int, admin: Int?)? {
        guard line.hasSuffix("listening"), let publicPort = port(after: "public=", in: line) else { return nil }
        return (publicPort, port(after: "admin=", in: line))
    }

    /// `baseline listening port=N`.
    @Sendable static func baselinePort(_ line: String) -> (public: Int, admin: Int?)? {
        guard line.hasPrefix("baseline listening port="), let port = Int(line.dropFirst("baseline listening port=".count)) else {
            return nil
        }
        return (port, nil)
    }

    private static func port(after key: String, in line: String) -> Int? {
        guard let range = line.range(of: key) else { return nil }
        let value = line[range.upperBound...].prefix { $0 != " " }
        guard let colon = value.lastIndex(of: ":") else { return nil }
        return Int(value[value.index(after: colon)...])
    }
}

/// The current child of a server that may be restarted.
private final class LockedChild: Sendable {
    private struct State {
        var child: ChildProcess?
        var target: TargetURL
    }

    /// Guards the child process, replaced by a restart.
    private let state: Mutex<State>

    init(child: ChildProcess?, target: TargetURL) {
        state = Mutex(State(child: child, target: target))
    }

    var child: ChildProcess? { state.withLock { $0.child } }
    var target: TargetURL { state.withLock { $0.target } }

    func replace(child: ChildProcess) {
        state.withLock { $0.child = child }
    }
}
