import ArgumentParser
import Foundation

extension BenchScenario: ExpressibleByArgument {}

/// `chatgate bench SCENARIO [options]`: measures the gateway and a raw WebSocket relay baseline
/// under the same load, in one invocation, and prints both with their ratio.
public struct BenchCommand: AsyncParsableCommand {
    /// `bench`, with the scenarios and their defaults in the help.
    public static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Load-test the gateway against a raw WebSocket relay baseline (use a release build).",
        discussion: """
            Scenarios: relay (P pairs 1:1 with a window or a rate), fanout (G groups of S members), \
            idle (N connections: memory per connection, handshakes/s, idle CPU), longpoll (WebSocket \
            senders, long-poll receivers), churn (N connections opened and closed in waves: memory \
            growth per 1,000 closed connections), storm (N clients through a gateway restart: recovery time, \
            lost messages), durable (relay with durability full vs relaxed; relay --postgres adds one and two \
            gateways on PostgreSQL), burst (P senders all sending one message at the same instant every \
            200 ms: 500 msgs/s for 100 pairs), media (the media store in process: \
            upload/download MiB/s, compression, thumbnails/s; MEDIA_BENCH_S3_ENDPOINT adds s3). \
            The gateway runs as a child process on a temporary config and store; with 2+ cores and \
            taskset, the server is pinned to CPU 0 and the generator to CPU 1. See docs/PERFORMANCE.md.
            """)

    @Argument(help: "relay, fanout, idle, churn, longpoll, storm, durable, burst or media.")
    var scenario: BenchScenario?

    @Option(help: "Measured seconds.")
    var duration: Double = 10

    @Option(help: "Seconds of load before measuring.")
    var warmup: Double = 3

    @Option(help: "Connections (idle, storm; default 10000, capped by the open-files limit).")
    var connections: Int?

    @Option(help: "Sender/receiver pairs (relay, durable, longpoll, burst; default 100).")
    var pairs: Int?

    @Option(help: "Unacked messages per sender (default 10).")
    var window: Int?

    @Option(help: "A fixed total send rate in msgs/s instead of the window (storm default 1000).")
    var rate: Double?

    @Option(help: "Groups (fanout; default 10).")
    var groups: Int?

    @Option(name: .customLong("group-size"), help: "Members per group (fanout; default 20).")
    var groupSize: Int?

    @Flag(name: .customLong("fanout-on-read"), help: "fanout: also measure a gateway serving the groups fanout-on-read (docs/GROUPS.md).")
    var fanoutOnRead = false

    @Option(name: .customLong("body-bytes"), help: "Bytes of each message body (default 100).")
    var bodyBytes: Int = 100

    @Option(help: "A running gateway's WebSocket URL (ws://HOST:PORT/v1/ws) instead of a child gateway.")
    var url: String?

    @Option(name: .customLong("jwt-secret"), help: "The HS256 secret of the --url gateway's auth stage.")
    var jwtSecret: String?

    @Option(help: "Write the report as JSON to this file.")
    var json: String?

    @Option(help: "The chatgate executable to launch (default: this one).")
    var binary: String?

    @Flag(inversion: .prefixedNo, help: "Pin the server to CPU 0 and the generator to CPU 1 (default: on with 2+ cores).")
    var taskset: Bool?

    @Option(help: "Repeat the gateway/baseline pair N times and report medians.")
    var runs: Int = 1

    @Flag(name: .customLong("no-baseline"), help: "Skip the baseline (quick checks; no ratio).")
    var noBaseline = false

    @Flag(help: "No progress lines on stderr.")
    var quiet = false

    @Flag(help: "relay: also measure one and two gateways on PostgreSQL (a private server, or --database-url).")
    var postgres = false

    @Option(name: .customLong("database-url"), help: "With --postgres: a PostgreSQL server (postgres://USER@HOST:PORT/DB, a user that may create databases) instead of a private one.")
    var databaseURL: String?

    @Option(name: .customLong("commits-in-flight"), help: "With --postgres: the nodes' store.commits_in_flight (1...8; default: the gateway's, 2).")
    var commitsInFlight: Int?

    @Flag(name: .customLong("serve-baseline"), help: .hidden)
    var serveBaseline = false

    @Option(help: .hidden)
    var port: Int = 0

    public init() {}

    /// The parameters these options describe.
    func parameters() throws(BenchError) -> BenchParameters {
        guard let scenario else { throw BenchError("missing SCENARIO (relay, fanout, idle, longpoll, storm, durable, burst, media)") }
        var p = BenchParameters(scenario: scenario)
        p.duration = duration
        p.warmup = warmup
        p.connections = connections
        p.pairs = pairs
        p.window = window
        p.rate = rate
        p.groups = groups
        p.groupSize = groupSize
        p.fanoutOnRead = fanoutOnRead
        p.bodyBytes = bodyBytes
        p.url = url
        p.jwtSecret = jwtSecret
        p.jsonPath = json
        p.binary = binary
        p.taskset = taskset
        p.runs = runs
        p.skipBaseline = noBaseline
        p.verbose = !quiet
        p.postgres = postgres
        p.databaseURL = databaseURL
        p.commitsInFlight = commitsInFlight
        try p.validate()
        return p
    }

    /// Refuses bad or inapplicable options before anything starts.
    public func validate() throws {
        if serveBaseline {
            guard (0...65535).contains(port) else { throw ValidationError("--port must be 0...65535 (was \(port))") }
            return
        }
        do {
            _ = try parameters()
        } catch {
            throw ValidationError(error.message)
        }
    }

    /// Runs the scenario and prints the report (or serves the baseline, for `--serve-baseline`).
    public func run() async throws {
        if serveBaseline {
            try await BaselineServer.run(port: port)
            return
        }
        let parameters = try parameters()
        if parameters.scenario == .media {
            print(try await MediaBench(rounds: max(3, parameters.runs), log: { FileHandle.standardError.write(Data(($0 + "\n").utf8)) }).run(), terminator: "")
            return
        }
        let report: BenchReport
        do {
            report = try await BenchRunner(parameters: parameters).run()
        } catch let error as BenchError {
            FileHandle.standardError.write(Data("bench: error: \(error.message)\n".utf8))
            throw ExitCode(1)
        }
        // The report is this command's output.
        print(report.table, terminator: "")
        if let path = parameters.jsonPath {
            do {
                try report.jsonText.write(toFile: path, atomically: true, encoding: .utf8)
            } catch {
                FileHandle.standardError.write(Data("bench: error: cannot write \(path): \(error)\n".utf8))
                throw ExitCode(1)
            }
        }
    }
}
