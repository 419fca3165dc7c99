import Foundation
import GatewayCore

/// The outcome of `chatgate bench`: the gateway's figures, the baseline's from the same
/// invocation, and their ratio; printed as a table and written as JSON.
public struct BenchReport: Sendable {
    /// The workload measured.
    public var scenario: BenchScenario
    /// When the run ended.
    public var date: Date
    /// Where it ran.
    public var machine: MachineInfo
    /// Whether server and generator were pinned to separate cores.
    public var pinned: Bool
    /// The effective parameters, as JSON members.
    public var config: JSONObject
    /// Medians over the runs.
    public var gateway: Figures
    /// The raw relay baseline's medians (nil with `--no-baseline`).
    public var baseline: Figures?
    /// More servers measured in the same run (`durable`: `gateway_relaxed`; `fanout --fanout-on-read`:
    /// `gateway_fanout_on_read`), by key in the JSON.
    public var others: [(key: String, label: String, figures: Figures)] = []
    /// Every run's figures, when there was more than one.
    public var runs: [(gateway: Figures, baseline: Figures?)] = []
    /// Errors seen (error frame codes, refused handshakes, unexpected closes) per server.
    public var errors: [String: [String: Int]] = [:]
    /// How to read some figures, and what happened (caps, kills).
    public var notes: [String] = []

    /// Gateway over baseline delivered msgs/s; for `idle`, baseline over gateway RSS per connection
    /// (so in both cases 1.0 means "as good as the raw relay" and less is worse).
    public var ratio: Double? {
        guard let baseline else { return nil }
        if scenario == .churn { return nil }
        if scenario == .idle {
            guard let g = gateway["rss_per_conn_bytes"], let b = baseline["rss_per_conn_bytes"], g > 0 else { return nil }
            return b / g
        }
        guard let g = gateway["msgs_per_s"], let b = baseline["msgs_per_s"], b > 0 else { return nil }
        return g / b
    }

    // MARK: JSON

    /// `{"scenario", "date", "machine": {cores, model}, "config", "gateway", "baseline", "ratio", …}`.
    public var json: JSONObject {
        var object: JSONObject = [:]
        object["scenario"] = .string(scenario.rawValue)
        object["date"] = .string(ISO8601DateFormatter().string(from: date))
        object["machine"] = ["cores": .int(machine.cores), "model": .string(machine.model), "pinned": .bool(pinned)]
        object["config"] = .object(config)
        object["gateway"] = Self.json(gateway)
        object["baseline"] = baseline.map(Self.json) ?? .null
        object["ratio"] = ratio.map(Self.number) ?? .null
        for other in others { object[other.key] = Self.json(other.figures) }
        if !runs.isEmpty {
            object["runs"] = .array(runs.map { run in
                ["gateway": Self.json(run.gateway), "baseline": run.baseline.map(Self.json) ?? .null]
            })
        }
        if !errors.isEmpty {
            object["errors"] = .object(JSONObject(errors.sorted { $0.key < $1.key }.map { server, counts in
                (key: server, value: JSONValue.object(JSONObject(counts.sorted { $0.key < $1.key }.map { (key: $0.key, value: .int($0.value)) })))
            }))
        }
        if !notes.isEmpty { object["notes"] = .array(notes.map { .string($0) }) }
        return object
    }

    /// The JSON text, one top-level member per line.
    public var jsonText: String {
        let members = json.members.map { "  \(JSONValue.string($0.key).jsonText): \($0.value.jsonText)" }
        return "{\n" + members.joined(separator: ",\n") + "\n}\n"
    }

    static func json(_ figures: Figures) -> JSONValue {
        .object(JSONObject(figures.entries.map { (key: $0.key, value: $0.value.map(number) ?? .null) }))
    }

    /// Whole numbers without a fraction; others with up to 3 decimals.
    static func number(_ value: Double) -> JSONValue {
        guard value.isFinite else { return .null }
        if value == value.rounded(), abs(value) < 1e15 { return .number(String(Int64(value))) }
        var text = String(format: "%.3f", value)
        while text.hasSuffix("0") { text.removeLast() }
        if text.hasSuffix(".") { text.removeLast() }
        return .number(text)
    }

    // MARK: Table

    /// The terminal table: one row per figure, a column per server, and the ratio.
    public var table: String {
        var columns: [(String, Figures)] = [("gateway", gateway)]
        for other in others { columns.append((other.label, other.figures)) }
        if let baseline { columns.append(("baseline", baseline)) }
        var keys: [String] = []
        for (_, figures) in columns { for key in figures.keys where !keys.contains(key) { keys.append(key) } }
        let order = Figures.labels.map(\.key)
        keys.sort { (order.firstIndex(of: $0) ?? Int.max, $0) < (order.firstIndex(of: $1) ?? Int.max, $1) }
        let labelWidth = max(28, keys.map { Self.label($0).count }.max() ?? 0)
        let width = 16
        var lines: [String] = []
        lines.append(title)
        lines.append(Self.pad("", labelWidth) + columns.map { Self.lpad($0.0, width) }.joined())
        for key in keys {
            var line = Self.pad(Self.label(key), labelWidth)
            for (_, figures) in columns { line += Self.lpad(figures[key].map(Self.format) ?? "-", width) }
            lines.append(line)
        }
        if let ratio {
            let what = scenario == .idle ? "baseline/gateway RSS per connection" : "gateway/baseline msgs/s"
            lines.append(Self.pad("ratio (\(what))", labelWidth) + Self.lpad(String(format: "%.3f", ratio), width))
        }
        for (server, counts) in errors.sorted(by: { $0.key < $1.key }) where !counts.isEmpty {
            lines.append("errors (\(server)): " + counts.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " "))
        }
        lines += notes.map { "note: \($0)" }
        return lines.joined(separator: "\n") + "\n"
    }

    var title: String {
        let settings = config.members.map { "\($0.key)=\($0.value.jsonText)" }.joined(separator: " ")
        return "chatgate bench \(scenario.rawValue) — \(machine.cores) cores (\(machine.model))\(pinned ? ", server on CPU 0, generator on CPU 1" : ""); \(settings)"
    }

    static func label(_ key: String) -> String {
        Figures.labels.first { $0.key == key }?.label ?? key
    }

    static func format(_ value: Double) -> String {
        if value == value.rounded(), abs(value) < 1e15 {
            return grouped(Int64(value))
        }
        return abs(value) >= 100 ? grouped(Int64(value.rounded())) : String(format: "%.2f", value)
    }

    private static func grouped(_ value: Int64) -> String {
        let digits = String(abs(value))
        var out = ""
        for (index, character) in digits.enumerated() {
            if index > 0, (digits.count - index) % 3 == 0 { out.append(",") }
            out.append(character)
        }
        return (value < 0 ? "-" : "") + out
    }

    private static func pad(_ text: String, _ width: Int) -> String {
        text.count >= width ? text + " " : text + String(repeating: " ", count: width - text.count)
    }

    private static func lpad(_ text: String, _ width: Int) -> String {
        text.count >= width ? " " + text : String(repeating: " ", count: width - text.count) + text
    }
}
