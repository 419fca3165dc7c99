import Foundation
import GatewayCore
import NIOCore
import NIOPosix

/// Runs a scenario against the gateway and then against the raw relay baseline, `runs` times,
/// and reports the medians.
public struct BenchRunner: Sendable {
    /// What to run (validated again by `run`).
    public let parameters: BenchParameters

    /// A runner for `parameters`.
    public init(parameters: BenchParameters) {
        self.parameters = parameters
    }

    /// Measures every server `runs` times and reports the medians; throws `BenchError` when a
    /// server or the load cannot start.
    public func run() async throws -> BenchReport {
        try parameters.validate()
        let machine = MachineInfo.current()
        let pinned = parameters.taskset ?? (machine.cores >= 2 && ChildProcess.findExecutable("taskset") != nil)
        if pinned {
            guard machine.cores >= 2 else { throw BenchError("--taskset needs at least 2 cores (this machine has \(machine.cores))") }
            try Self.pinSelf(cpu: 1)
        }
        let binary = try resolveBinary()
        let verbose = parameters.verbose
        let log: @Sendable (String) -> Void = { line in
            if verbose { FileHandle.standardError.write(Data("bench: \(line)\n".utf8)) }
        }
        // One thread for every client: the generator gets one core, as the peers' generator had.
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let prefix = "b" + String(UInt32.random(in: 0...UInt32.max), radix: 36) + "-"
        let scenarios = Scenarios(parameters: parameters, eventLoop: group.next(), prefix: prefix, log: log)
        let serverCPU = pinned ? 0 : nil

        var kinds: [ServerKind] = []
        if let url = parameters.url, let target = TargetURL(url), let secret = parameters.jwtSecret {
            kinds.append(.external(target, secret: secret))
        } else {
            kinds.append(.gateway(durability: "full"))
        }
        if parameters.scenario == .durable { kinds.append(.gateway(durability: "relaxed")) }
        if parameters.scenario == .fanout, parameters.fanoutOnRead {
            kinds.append(.gateway(durability: "full", fanoutOnReadAbove: BenchParameters.fanoutOnReadAbove))
        }
        var postgres: BenchPostgres?
        if parameters.postgres {
            kinds += [.postgres(nodes: 1), .postgres(nodes: 2)]
            do {
                postgres = try BenchPostgres.start(databaseURL: parameters.databaseURL, log: log)
            } catch {
                try? await group.shutdownGracefully()
                throw error
            }
        }
        defer { postgres?.stop() }
        if !parameters.skipBaseline { kinds.append(.baseline) }

        var results: [[Measurement]] = []
        do {
            for run in 1...parameters.runs {
                var row: [Measurement] = []
                for kind in kinds {
                    log("run \(run)/\(parameters.runs): \(parameters.scenario.rawValue) against \(kind.label)")
                    let server = try await ServerUnderTest.start(
                        kind, binary: binary, cpu: serverCPU, postgres: postgres, commitsInFlight: parameters.commitsInFlight)
                    do {
                        row.append(try await scenarios.measure(server))
                        await server.stop()
                    } catch {
                        await server.stop()
                        throw error
                    }
                }
                results.append(row)
            }
        } catch {
            try? await group.shutdownGracefully()
            throw error
        }
        try? await group.shutdownGracefully()

        var report = BenchReport(
            scenario: parameters.scenario, date: Date(), machine: machine, pinned: pinned, config: config(scenarios),
            gateway: Figures.median(results.map { $0[0].figures }))
        for (column, kind) in kinds.enumerated() {
            let figures = Figures.median(results.map { $0[column].figures })
            var errors: [String: Int] = [:]
            for row in results { for (key, value) in row[column].errors { errors[key, default: 0] += value } }
            let name: String
            switch kind {
            case .baseline:
                report.baseline = figures
                name = "baseline"
            case .gateway(_, _?):
                report.others.append((key: "gateway_fanout_on_read", label: "gw on read", figures: figures))
                name = "gateway_fanout_on_read"
            case .postgres(let nodes):
                name = nodes == 1 ? "gateway_postgres" : "gateway_postgres_\(nodes)_nodes"
                report.others.append((key: name, label: nodes == 1 ? "gw pg" : "gw pg ×\(nodes)", figures: figures))
            case .gateway(let durability, nil) where durability != "full":
                report.others.append((key: "gateway_\(durability)", label: "gw \(durability)", figures: figures))
                name = "gateway_\(durability)"
            default:
                name = "gateway"
            }
            if !errors.isEmpty { report.errors[name] = errors }
            for row in results { for note in row[column].notes where !report.notes.contains(note) { report.notes.append(note) } }
        }
        if parameters.runs > 1 {
            let baselineColumn = kinds.firstIndex(of: .baseline)
            report.runs = results.map { row in (gateway: row[0].figures, baseline: baselineColumn.map { row[$0].figures }) }
        }
        if parameters.scenario == .durable, let relaxed = report.others.first?.figures["msgs_per_s"],
            let full = report.gateway["msgs_per_s"], relaxed > 0
        {
            report.notes.append(String(format: "durable: full durability delivers %.3f× the msgs/s of relaxed", full / relaxed))
        }
        if parameters.postgres, let onPostgres = report.others.first(where: { $0.key == "gateway_postgres" })?.figures["msgs_per_s"],
            let embedded = report.gateway["msgs_per_s"], embedded > 0
        {
            report.notes.append(String(format: "postgres: one node on PostgreSQL relays %.3f× the msgs/s of the same node on SQLite", onPostgres / embedded))
            if let two = report.others.first(where: { $0.key == "gateway_postgres_2_nodes" })?.figures["msgs_per_s"] {
                report.notes.append(String(format: "postgres: two nodes on one PostgreSQL relay %.3f× the msgs/s of one node on it", two / max(onPostgres, 1)))
            }
        }
        if parameters.scenario == .fanout, let onRead = report.others.first(where: { $0.key == "gateway_fanout_on_read" })?.figures["msgs_per_s"],
            let written = report.gateway["msgs_per_s"], written > 0
        {
            report.notes.append(
                String(format: "fanout: fanout-on-read (groups above %d members) delivers %.3f× the deliveries/s of write fanout", BenchParameters.fanoutOnReadAbove, onRead / written))
        }
        return report
    }

    /// The parameters in force, for the report.
    private func config(_ scenarios: Scenarios) -> JSONObject {
        var config: JSONObject = [:]
        let p = parameters
        switch p.scenario {
        case .relay, .durable, .longpoll:
            config["pairs"] = .int(p.effectivePairs)
            if let rate = p.effectiveRate { config["rate"] = BenchReport.number(rate) } else { config["window"] = .int(p.effectiveWindow) }
            config["body_bytes"] = .int(p.bodyBytes)
        case .fanout:
            config["groups"] = .int(p.effectiveGroups)
            config["group_size"] = .int(p.effectiveGroupSize)
            config["senders_per_group"] = .int(BenchParameters.sendersPerGroup)
            if let rate = p.effectiveRate { config["rate"] = BenchReport.number(rate) } else { config["window"] = .int(p.effectiveWindow) }
            config["body_bytes"] = .int(p.bodyBytes)
        case .burst:
            config["pairs"] = .int(p.effectivePairs)
            config["burst_interval_ms"] = .int(BenchParameters.burstIntervalMs)
            config["rate"] = BenchReport.number(Double(p.effectivePairs) * 1000 / Double(BenchParameters.burstIntervalMs))
            config["body_bytes"] = .int(p.bodyBytes)
        case .idle:
            config["connections"] = .int(scenarios.idleConnections().0)
        case .churn:
            config["connections"] = .int(p.effectiveConnections)
            config["wave"] = .int(Scenarios.churnWave(p.effectiveConnections))
        case .media:
            break
        case .storm:
            config["connections"] = .int(scenarios.idleConnections().0 / 2 * 2)
            config["rate"] = BenchReport.number(p.effectiveRate ?? 0)
            config["body_bytes"] = .int(p.bodyBytes)
        }
        if p.scenario != .storm {
            config["duration_s"] = BenchReport.number(p.duration)
        }
        config["warmup_s"] = BenchReport.number(p.warmup)
        config["runs"] = .int(p.runs)
        config["durability"] = p.scenario == .durable ? "full vs relaxed" : "full"
        if p.postgres { config["postgres"] = .string(p.databaseURL.map { _ in "--database-url" } ?? "private server") }
        if let commitsInFlight = p.commitsInFlight { config["commits_in_flight"] = .int(commitsInFlight) }
        config["target"] = .string(p.url ?? "child process")
        return config
    }

    private func resolveBinary() throws -> String {
        if let binary = parameters.binary { return binary }
        if let own = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") { return own }
        guard let first = CommandLine.arguments.first, FileManager.default.isExecutableFile(atPath: first) else {
            throw BenchError("cannot find the chatgate executable: pass --binary PATH")
        }
        return first
    }

    /// Pins every thread of this process (and so the threads it starts later) to `cpu`.
    static func pinSelf(cpu: Int) throws {
        guard let taskset = ChildProcess.findExecutable("taskset") else { throw BenchError("taskset is not installed") }
        let (pid, output) = try ChildProcess.spawn(
            [taskset, "-a", "-p", "-c", String(cpu), String(getpid())], environment: ProcessInfo.processInfo.environment.map { "\($0.key)=\($0.value)" })
        var byte: UInt8 = 0
        while read(output, &byte, 1) > 0 {}
        close(output)
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0, errno == EINTR {}
        guard status == 0 else { throw BenchError("taskset could not pin the generator to CPU \(cpu)") }
    }
}
