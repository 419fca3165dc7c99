/// The measured figures of one server in one run, by report key (`msgs_per_s`, `p99_us`, …),
/// in the order they were set. A missing figure is nil and reads `-` in the table.
public struct Figures: Sendable, Equatable {
    /// The figures in the order they were set.
    public private(set) var entries: [(key: String, value: Double?)] = []

    public init() {}

    /// Figures from (key, value) pairs, in order.
    public init(_ entries: [(String, Double?)]) {
        for (key, value) in entries { self[key] = value }
    }

    /// A figure by key (nil when missing); setting nil keeps the key with no value.
    public subscript(key: String) -> Double? {
        get { entries.first { $0.key == key }?.value ?? nil }
        set {
            if let index = entries.firstIndex(where: { $0.key == key }) {
                entries[index].value = newValue
            } else {
                entries.append((key, newValue))
            }
        }
    }

    /// The keys in order.
    public var keys: [String] { entries.map(\.key) }

    /// Sets `p50_us`, `p99_us`, `p999_us` (with `prefix`) from a histogram.
    mutating func setLatency(_ histogram: BenchHistogram, prefix: String = "") {
        self[prefix + "p50_us"] = histogram.p50.map { Double($0) }
        self[prefix + "p99_us"] = histogram.p99.map { Double($0) }
        self[prefix + "p999_us"] = histogram.p999.map { Double($0) }
    }

    /// The median of each figure over several runs (keys in the first run's order; a figure
    /// missing from some runs is the median of those that have it).
    public static func median(_ runs: [Figures]) -> Figures {
        guard let first = runs.first else { return Figures() }
        guard runs.count > 1 else { return first }
        var result = Figures()
        var keys = first.keys
        for run in runs.dropFirst() { for key in run.keys where !keys.contains(key) { keys.append(key) } }
        for key in keys {
            let values = runs.compactMap { $0[key] }.sorted()
            if values.isEmpty {
                result[key] = nil
            } else if values.count % 2 == 1 {
                result[key] = values[values.count / 2]
            } else {
                result[key] = (values[values.count / 2 - 1] + values[values.count / 2]) / 2
            }
        }
        return result
    }

    /// Same keys, in the same order, with the same values.
    public static func == (lhs: Figures, rhs: Figures) -> Bool {
        lhs.entries.count == rhs.entries.count && zip(lhs.entries, rhs.entries).allSatisfy { $0.key == $1.key && $0.value == $1.value }
    }

    /// Table labels, in table order; keys without one are shown by key.
    static let labels: [(key: String, label: String)] = [
        ("msgs_per_s", "delivered msgs/s"),
        ("p50_us", "end-to-end p50 (µs)"),
        ("p99_us", "end-to-end p99 (µs)"),
        ("p999_us", "end-to-end p99.9 (µs)"),
        ("ack_p50_us", "ack p50 (µs)"),
        ("ack_p99_us", "ack p99 (µs)"),
        ("ack_p999_us", "ack p99.9 (µs)"),
        ("sent_per_s", "sent msgs/s"),
        ("connections", "connections"),
        ("rss_per_conn_bytes", "RSS per connection (bytes)"),
        ("handshakes_per_s", "handshakes/s"),
        ("heartbeats_per_s", "heartbeats/s"),
        ("recovery_s", "all back and caught up (s)"),
        ("restart_s", "server restart (s)"),
        ("acked", "messages acked"),
        ("lost", "lost (acked, never received)"),
        ("unacked", "never acked"),
        ("server_cpu_pct", "server CPU (% of a core)"),
        ("server_cpu_us_per_msg", "server CPU per message sent (µs)"),
        ("server_rss_bytes", "server RSS (bytes)"),
        ("generator_cpu_pct", "generator CPU (% of a core)"),
        ("postgres_cpu_pct", "PostgreSQL CPU (% of a core)"),
        ("errors", "errors"),
    ]
}
