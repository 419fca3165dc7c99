import Foundation
import GatewayCore
import Testing

@testable import GatewayBench

@Suite("bench report")
struct ReportTests {
    static func report(_ scenario: BenchScenario, gateway: Figures, baseline: Figures?) -> BenchReport {
        BenchReport(
            scenario: scenario, date: Date(timeIntervalSince1970: 1_800_000_000), machine: MachineInfo(cores: 2, model: "Test CPU"),
            pinned: true, config: ["pairs": 100, "window": 10], gateway: gateway, baseline: baseline)
    }

    static let gateway = Figures([
        ("msgs_per_s", 52_000.4), ("p50_us", 1_200), ("p99_us", 4_100), ("p999_us", 9_000), ("ack_p50_us", 1_100), ("server_cpu_pct", 99.4),
    ])
    static let baseline = Figures([("msgs_per_s", 260_002.4), ("p50_us", 300), ("p99_us", 900), ("p999_us", 1_500)])

    @Test func jsonHasTheShapeTheIssueAsksFor() throws {
        let report = Self.report(.relay, gateway: Self.gateway, baseline: Self.baseline)
        let parsed = try JSONParser.parse(report.jsonText)
        let object = try #require(parsed.objectValue)
        #expect(Array(object.keys.prefix(7)) == ["scenario", "date", "machine", "config", "gateway", "baseline", "ratio"])
        #expect(object["scenario"] == "relay")
        #expect(object["machine"]?["cores"] == 2)
        #expect(object["machine"]?["model"] == "Test CPU")
        #expect(object["config"]?["pairs"] == 100)
        for side in ["gateway", "baseline"] {
            let figures = try #require(object[side]?.objectValue)
            for key in ["msgs_per_s", "p50_us", "p99_us", "p999_us"] {
                #expect(figures[key]?.isNull == false, "\(side).\(key)")
            }
        }
        #expect(object["gateway"]?["msgs_per_s"] == .number("52000.4"))
        #expect(object["gateway"]?["p99_us"] == 4100)
        let ratio = try #require(object["ratio"].flatMap { if case .number(let n) = $0 { Double(n) } else { nil } })
        #expect(abs(ratio - 0.2) < 0.001)
    }

    @Test func idleRatioIsBaselineOverGatewayBytesPerConnection() throws {
        let report = Self.report(
            .idle, gateway: Figures([("msgs_per_s", 2000), ("rss_per_conn_bytes", 6144)]),
            baseline: Figures([("msgs_per_s", 2000), ("rss_per_conn_bytes", 3072)]))
        #expect(report.ratio == 0.5)
        let object = try #require(try JSONParser.parse(report.jsonText).objectValue)
        #expect(object["gateway"]?["rss_per_conn_bytes"] == 6144)
        #expect(object["ratio"] == .number("0.5"))
    }

    @Test func withoutABaselineTheRatioIsNull() throws {
        let report = Self.report(.relay, gateway: Self.gateway, baseline: nil)
        #expect(report.ratio == nil)
        let object = try #require(try JSONParser.parse(report.jsonText).objectValue)
        #expect(object["baseline"] == .null)
        #expect(object["ratio"] == .null)
    }

    @Test func tableShowsBothServersAndTheRatio() {
        var report = Self.report(.relay, gateway: Self.gateway, baseline: Self.baseline)
        report.errors = ["gateway": ["unavailable": 3]]
        let table = report.table
        #expect(table.contains("delivered msgs/s"))
        #expect(table.contains("52,000"))
        #expect(table.contains("260,002"))
        #expect(table.contains("ratio (gateway/baseline msgs/s)"))
        #expect(table.contains("0.200"))
        #expect(table.contains("errors (gateway): unavailable=3"))
        // A figure only the gateway has reads "-" for the baseline.
        #expect(table.split(separator: "\n").contains { $0.hasPrefix("ack p50") && $0.hasSuffix("-") })
    }

    @Test func mediansAreTakenPerFigure() {
        let runs = [
            Figures([("msgs_per_s", 100), ("p99_us", 9), ("lost", nil)]),
            Figures([("msgs_per_s", 300), ("p99_us", 1), ("lost", 0)]),
            Figures([("msgs_per_s", 200), ("p99_us", 5), ("lost", 2)]),
        ]
        let median = Figures.median(runs)
        #expect(median["msgs_per_s"] == 200)
        #expect(median["p99_us"] == 5)
        #expect(median["lost"] == 1)  // the two runs that have it
        #expect(Figures.median([Figures([("a", 1)]), Figures([("a", 4)])])["a"] == 2.5)
        #expect(Figures.median([]) == Figures())
    }

    @Test func numbersAreWrittenCompactly() {
        #expect(BenchReport.number(3) == .number("3"))
        #expect(BenchReport.number(0.5) == .number("0.5"))
        #expect(BenchReport.number(1.23456) == .number("1.235"))
        #expect(BenchReport.number(.nan) == .null)
    }
}
