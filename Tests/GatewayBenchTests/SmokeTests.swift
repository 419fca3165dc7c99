import Foundation
import GatewayCore
import GatewayTesting
import Testing

@testable import GatewayBench

/// Each scenario for about a second at tiny scale against real child processes of the debug
/// `chatgate` (gateway and baseline), so the command cannot rot. The tests build nothing: run
/// `swift build --build-tests` first. Serialized: they share two cores with everything else.
@Suite("bench smoke", .serialized)
struct SmokeTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let binary = repository.appendingPathComponent(".build/debug/chatgate").path

    static func parameters(_ scenario: BenchScenario, _ configure: (inout BenchParameters) -> Void = { _ in }) throws -> BenchParameters {
        try #require(FileManager.default.isExecutableFile(atPath: binary), "no \(binary): run `swift build --build-tests` first")
        var parameters = BenchParameters(scenario: scenario)
        parameters.binary = binary
        parameters.taskset = false
        parameters.verbose = false
        parameters.duration = 0.6
        parameters.warmup = 0.2
        configure(&parameters)
        return parameters
    }

    /// Figures every load scenario must have for both servers.
    static func expectTraffic(_ report: BenchReport) throws {
        let baseline = try #require(report.baseline)
        for figures in [report.gateway, baseline] {
            #expect((figures["msgs_per_s"] ?? 0) > 0)
            #expect(figures["p50_us"] != nil)
            #expect(figures["p99_us"] != nil)
            #expect(figures["p999_us"] != nil)
            #expect(figures["server_rss_bytes"] != nil)
        }
        #expect(report.ratio != nil)
    }

    @Test func relayThroughTheCommandWritesJSON() async throws {
        _ = try Self.parameters(.relay)
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("bench-\(UUID().uuidString).json").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let command = try BenchCommand.parse([
            "relay", "--pairs", "3", "--window", "2", "--duration", "0.6", "--warmup", "0.2", "--no-taskset", "--quiet",
            "--binary", Self.binary, "--json", path,
        ])
        try await command.run()
        let object = try #require(try JSONParser.parse(String(contentsOfFile: path, encoding: .utf8)).objectValue)
        #expect(object["scenario"] == "relay")
        #expect(object["config"]?["pairs"] == 3)
        let delivered = try #require(object["gateway"]?["msgs_per_s"].flatMap { if case .number(let n) = $0 { Double(n) } else { nil } })
        #expect(delivered > 0)
        #expect(object["baseline"]?["p99_us"]?.isNull == false)
        #expect(object["ratio"]?.isNull == false)
    }

    @Test func relayAtAFixedRate() async throws {
        let report = try await BenchRunner(parameters: Self.parameters(.relay) { $0.pairs = 2; $0.rate = 100 }).run()
        try Self.expectTraffic(report)
        #expect(report.config["rate"] == 100)
        // Server CPU per message sent, for the gateway and the baseline.
        #expect((report.gateway["server_cpu_us_per_msg"] ?? 0) > 0)
        #expect((report.baseline?["server_cpu_us_per_msg"] ?? 0) > 0)
    }

    /// `burst`: every sender sends one message at the same instant every 200 ms, open loop
    /// (an ack does not trigger another send, unlike the window of `relay`).
    @Test func burst() async throws {
        let report = try await BenchRunner(parameters: Self.parameters(.burst) { $0.pairs = 3; $0.duration = 1 }).run()
        try Self.expectTraffic(report)
        #expect(report.config["burst_interval_ms"] == 200)
        #expect(report.config["rate"] == 15)
        // 3 senders × 5 bursts a second; a window would send hundreds.
        let sent = try #require(report.gateway["sent_per_s"])
        #expect(sent > 5 && sent < 30)
    }

    @Test func fanout() async throws {
        let report = try await BenchRunner(parameters: Self.parameters(.fanout) { $0.groups = 2; $0.groupSize = 3; $0.window = 2 }).run()
        try Self.expectTraffic(report)
        // Each message reaches the other members: more deliveries than sends.
        #expect((report.gateway["msgs_per_s"] ?? 0) > (report.gateway["sent_per_s"] ?? 0))
    }

    /// `--fanout-on-read` adds a gateway whose `fanout` stage serves every group of the run
    /// fanout-on-read: its config says so (as `check-config` reads it) and it delivers.
    @Test func fanoutAgainstFanoutOnRead() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("bench-config-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let config = directory.appendingPathComponent("bench.yaml")
        try ServerUnderTest.configText(
            directory: directory, port: 0, secret: String(repeating: "s", count: 48), durability: "full",
            fanoutOnReadAbove: BenchParameters.fanoutOnReadAbove
        ).write(to: config, atomically: true, encoding: .utf8)
        let check = try await Command.run(Self.binary, ["check-config", config.path])
        let printed = check.output
        #expect(check.succeeded, "\(printed)\(check.error)")
        #expect(printed.contains("fanout (fanout) on [send] {\"fanout_on_read_above\":\(BenchParameters.fanoutOnReadAbove)}"), "\(printed)")

        let report = try await BenchRunner(
            parameters: Self.parameters(.fanout) { $0.groups = 2; $0.groupSize = 3; $0.window = 2; $0.fanoutOnRead = true }
        ).run()
        try Self.expectTraffic(report)
        #expect(report.others.map(\.key) == ["gateway_fanout_on_read"])
        let onRead = try #require(report.others.first?.figures)
        #expect((onRead["msgs_per_s"] ?? 0) > (onRead["sent_per_s"] ?? 0))
        #expect(report.notes.contains { $0.hasPrefix("fanout: fanout-on-read") })
    }

    @Test func idle() async throws {
        let report = try await BenchRunner(parameters: Self.parameters(.idle) { $0.connections = 30; $0.duration = 1 }).run()
        let baseline = try #require(report.baseline)
        for figures in [report.gateway, baseline] {
            #expect(figures["connections"] == 30)
            #expect(figures["rss_per_conn_bytes"] != nil)
            #expect((figures["handshakes_per_s"] ?? 0) > 0)
            #expect(figures["server_cpu_pct"] != nil)
        }
        #expect(report.ratio != nil)
    }

    @Test func longpoll() async throws {
        let report = try await BenchRunner(parameters: Self.parameters(.longpoll) { $0.pairs = 2; $0.window = 2 }).run()
        try Self.expectTraffic(report)
    }

    @Test func stormLosesNothing() async throws {
        let report = try await BenchRunner(parameters: Self.parameters(.storm) { $0.connections = 10; $0.rate = 50 }).run()
        #expect(report.gateway["lost"] == 0)
        #expect(report.gateway["unacked"] == 0)
        #expect((report.gateway["acked"] ?? 0) > 0)
        #expect(report.gateway["recovery_s"] != nil)
        #expect(report.baseline?["recovery_s"] != nil)
    }

    @Test func durableComparesBothDurabilities() async throws {
        let report = try await BenchRunner(parameters: Self.parameters(.durable) { $0.pairs = 2; $0.window = 2 }).run()
        try Self.expectTraffic(report)
        #expect(report.others.map(\.key) == ["gateway_relaxed"])
        #expect((report.others.first?.figures["msgs_per_s"] ?? 0) > 0)
    }

    /// `relay --postgres`: the SQLite gateway, one and two gateways on a private PostgreSQL
    /// server the bench starts (skipped when PostgreSQL is not installed and not required).
    @Test func relayOnPostgres() async throws {
        guard BenchPostgres.binDirectory() != nil || ProcessInfo.processInfo.environment["CHATGATE_REQUIRE_POSTGRES"] != nil else {
            try Test.cancel("PostgreSQL is not installed: run scripts/setup-postgres.sh")
        }
        let report = try await BenchRunner(parameters: Self.parameters(.relay) { $0.pairs = 4; $0.window = 2; $0.postgres = true }).run()
        try Self.expectTraffic(report)
        #expect(report.others.map(\.key) == ["gateway_postgres", "gateway_postgres_2_nodes"])
        for other in report.others { #expect((other.figures["msgs_per_s"] ?? 0) > 0, "\(other.key)") }
        #expect(report.notes.contains { $0.hasPrefix("postgres: one node on PostgreSQL relays") })
        #expect(report.errors.isEmpty, "\(report.errors)")
    }
}
