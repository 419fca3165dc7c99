import GatewayCore
import Prometheus
import Synchronization

/// `GET /metrics`: the node's figures in the Prometheus text exposition format.
///
/// Each application owns its registry (no `MetricsSystem.bootstrap`, which is once per process:
/// tests run many gateways in one process). Nothing is recorded on the hot path: the pipeline and
/// the transports keep lock-free counters, and a scrape copies them into the registry's counters
/// and gauges, then emits. Stage latency comes from the runner's fine histograms, folded into
/// ``latencyBucketsMicros``; swift-prometheus's `Histogram` takes one observation at a time and
/// cannot be handed bucket counts, so those families are written here, in the same format.
///
/// Label values are bounded by the config: `stage` and `kind` (the pipeline's entries),
/// `transport`, `outcome`, `reason`, `provider` (fixed sets). No user, device or conversation id ever becomes
/// a label, so the series count does not grow with traffic. docs/OPERATIONS.md lists every family.
final class MetricsExporter: Sendable {
    /// Upper bounds (µs) of the exported latency buckets; `+Inf` follows.
    static let latencyBucketsMicros: [UInt64] = [25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000, 25_000, 100_000, 1_000_000]

    private struct StageCounters {
        let processed: Counter
        let rejected: Counter
        let errors: Counter
    }

    private struct StageKey: Hashable {
        let name: String
        let kind: String
    }

    private struct Fixed {
        let uptime: Gauge
        let websocket: Gauge
        let longpoll: Gauge
        let usersOnline: Gauge
        let pendingCommits: Gauge
        let orderRefusals: Counter
        let framesIn: Counter
        let framesOut: Counter
        let accepted: Counter
        let rejected: Counter
        let deliveries: Counter
        let slowConsumers: Counter
        let storeUp: Gauge
        let storeMessages: Gauge
        let storeInboxEntries: Gauge
        let storeBytes: Gauge
        let pushSent: Counter
        let pushFailed: Counter
        let pushQueued: Gauge
        let mediaUploads: Counter
        let mediaBytesIn: Counter
        let mediaBytesStored: Gauge
        let reloadsSucceeded: Counter
        let reloadsFailed: Counter
    }

    private struct State {
        /// Counters of the stages in force, by stage; those of stages a reload removed are
        /// unregistered, so their series end.
        var stages: [StageKey: StageCounters] = [:]
        var buffer: [UInt8] = []
        /// Each counter's reading at the last scrape, so the next one adds only the difference.
        var last: [ObjectIdentifier: Int] = [:]
    }

    private let registry = PrometheusCollectorRegistry()
    private let fixed: Fixed
    /// Serializes scrapes: counters move by the difference between two absolute readings, which
    /// two concurrent scrapes must not interleave. Guards the stage counters, the last readings
    /// and the buffer.
    private let state = Mutex(State())

    init() {
        let r = registry
        fixed = Fixed(
            uptime: r.makeGauge(descriptor: Self.descriptor("uptime", unit: "seconds", help: "Seconds since the node started.")),
            websocket: r.makeGauge(descriptor: Self.descriptor("connections", unit: "", help: Help.connections), labels: [("transport", "websocket")]),
            longpoll: r.makeGauge(descriptor: Self.descriptor("connections", unit: "", help: Help.connections), labels: [("transport", "longpoll")]),
            usersOnline: r.makeGauge(descriptor: Self.descriptor("users_online", unit: "", help: "Users with at least one live session on this node.")),
            pendingCommits: r.makeGauge(descriptor: Self.descriptor("pending_commits", unit: "", help: "Messages waiting in the group-commit queue.")),
            orderRefusals: r.makeCounter(descriptor: Self.descriptor("commit_order_refusals", unit: "total", help: Help.orderRefusals)),
            framesIn: r.makeCounter(descriptor: Self.descriptor("frames_in", unit: "total", help: "Client frames received, every transport.")),
            framesOut: r.makeCounter(descriptor: Self.descriptor("frames_out", unit: "total", help: "Frames sent to clients, every transport.")),
            accepted: r.makeCounter(descriptor: Self.descriptor("messages", unit: "total", help: Help.messages), labels: [("outcome", "accepted")]),
            rejected: r.makeCounter(descriptor: Self.descriptor("messages", unit: "total", help: Help.messages), labels: [("outcome", "rejected")]),
            deliveries: r.makeCounter(descriptor: Self.descriptor("live_deliveries", unit: "total", help: "Message frames handed to recipients' live sessions.")),
            slowConsumers: r.makeCounter(descriptor: Self.descriptor("session_drops", unit: "total", help: Help.drops), labels: [("reason", "slow_consumer")]),
            storeUp: r.makeGauge(descriptor: Self.descriptor("store_up", unit: "", help: "1 when the store answered this scrape, else 0.")),
            storeMessages: r.makeGauge(descriptor: Self.descriptor("store_messages", unit: "", help: "Messages in the store.")),
            storeInboxEntries: r.makeGauge(descriptor: Self.descriptor("store_inbox_entries", unit: "", help: "Inbox entries in the store.")),
            storeBytes: r.makeGauge(descriptor: Self.descriptor("store", unit: "bytes", help: "Bytes the store occupies on disk (database and WAL).")),
            pushSent: r.makeCounter(descriptor: Self.descriptor("push", unit: "total", help: Help.push), labels: [("outcome", "sent")]),
            pushFailed: r.makeCounter(descriptor: Self.descriptor("push", unit: "total", help: Help.push), labels: [("outcome", "failed")]),
            pushQueued: r.makeGauge(descriptor: Self.descriptor("push_queued", unit: "", help: "Push notifications waiting to be sent.")),
            mediaUploads: r.makeCounter(descriptor: Self.descriptor("media_uploads", unit: "total", help: "Media uploads accepted.")),
            mediaBytesIn: r.makeCounter(descriptor: Self.descriptor("media_received_bytes", unit: "total", help: "Bytes of media received.")),
            mediaBytesStored: r.makeGauge(descriptor: Self.descriptor("media_stored", unit: "bytes", help: "Bytes of media stored.")),
            reloadsSucceeded: r.makeCounter(descriptor: Self.descriptor("config_reloads", unit: "total", help: Help.reloads), labels: [("outcome", "success")]),
            reloadsFailed: r.makeCounter(descriptor: Self.descriptor("config_reloads", unit: "total", help: Help.reloads), labels: [("outcome", "failure")]))
    }

    private static func descriptor(_ name: String, unit: String, help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(namespace: "chatgate", metricName: name, unitName: unit, helpText: help)
    }

    private enum Help {
        static let connections = "Live sessions on this node, by transport."
        static let messages = "Send frames that ended stored (accepted) or refused (rejected)."
        static let drops = "Sessions the node closed itself, by reason."
        static let push = "Push notifications, by outcome."
        static let orderRefusals = "Batches PostgreSQL refused for inbox order (a later id was there first); each was re-stamped and committed again."
        static let reloads = "Pipeline reloads (POST /admin/reload, SIGHUP), by outcome."
        static let stageProcessed = "Frames a stage processed."
        static let stageRejected = "Frames a stage rejected."
        static let stageErrors = "Frames a stage failed on (it threw)."
        static let stageLatency = "Time a stage took per frame, measured by the pipeline runner."
    }

    /// The exposition text of `figures`.
    func render(_ figures: GatewayFigures) -> [UInt8] {
        state.withLock { state in
            update(figures, state: &state)
            state.buffer.removeAll(keepingCapacity: true)
            registry.emit(into: &state.buffer)
            Self.emitLatency(figures.stages, into: &state.buffer)
            Self.emitPush(figures.push, into: &state.buffer)
            return state.buffer
        }
    }

    private func update(_ f: GatewayFigures, state: inout State) {
        func set(_ counter: Counter, _ value: Int) { Self.set(counter, value, last: &state.last) }
        fixed.uptime.set(Double(f.uptimeSeconds))
        fixed.websocket.set(Double(f.websocketConnections))
        fixed.longpoll.set(Double(f.longpollConnections))
        fixed.usersOnline.set(Double(f.usersOnline))
        fixed.pendingCommits.set(Double(f.pendingCommits))
        set(fixed.orderRefusals, f.orderRefusals)
        set(fixed.framesIn, f.framesIn)
        set(fixed.framesOut, f.framesOut)
        set(fixed.accepted, f.messagesAccepted)
        set(fixed.rejected, f.messagesRejected)
        set(fixed.deliveries, f.liveDeliveries)
        set(fixed.slowConsumers, f.slowConsumerCloses)
        fixed.storeUp.set(f.store == nil ? 0.0 : 1.0)
        if let store = f.store {
            // A failed read keeps the last figures rather than dropping to 0; `store_up` says so.
            fixed.storeMessages.set(Double(store.messages))
            fixed.storeInboxEntries.set(Double(store.inboxEntries))
            fixed.storeBytes.set(Double(store.bytes))
        }
        set(fixed.pushSent, f.pushSent)
        set(fixed.pushFailed, f.pushFailed)
        fixed.pushQueued.set(Double(f.pushQueued))
        set(fixed.mediaUploads, f.mediaUploads)
        set(fixed.mediaBytesIn, f.mediaBytesIn)
        fixed.mediaBytesStored.set(Double(f.mediaBytesStored))
        set(fixed.reloadsSucceeded, f.reloads.succeeded)
        set(fixed.reloadsFailed, f.reloads.failed)

        var seen: Set<StageKey> = []
        for stage in f.stages {
            let key = StageKey(name: stage.name, kind: stage.kind)
            seen.insert(key)
            let counters = state.stages[key] ?? makeStageCounters(key)
            state.stages[key] = counters
            set(counters.processed, stage.processed)
            set(counters.rejected, stage.rejected)
            set(counters.errors, stage.errors)
        }
        for (key, counters) in state.stages where !seen.contains(key) {
            for counter in [counters.processed, counters.rejected, counters.errors] {
                registry.unregisterCounter(counter)
                state.last[ObjectIdentifier(counter)] = nil
            }
            state.stages[key] = nil
        }
    }

    private func makeStageCounters(_ key: StageKey) -> StageCounters {
        let labels = [("stage", key.name), ("kind", key.kind)]
        return StageCounters(
            processed: registry.makeCounter(descriptor: Self.descriptor("stage_processed", unit: "total", help: Help.stageProcessed), labels: labels),
            rejected: registry.makeCounter(descriptor: Self.descriptor("stage_rejected", unit: "total", help: Help.stageRejected), labels: labels),
            errors: registry.makeCounter(descriptor: Self.descriptor("stage_errors", unit: "total", help: Help.stageErrors), labels: labels))
    }

    /// Brings a counter to an absolute reading (our counters are the source of truth) by adding
    /// the difference since the last scrape: a counter is never reset while its source only
    /// grows. A reading below the last one (a source that started over) resets it, which
    /// Prometheus treats as a counter reset.
    private static func set(_ counter: Counter, _ value: Int, last: inout [ObjectIdentifier: Int]) {
        let value = max(0, value)
        let key = ObjectIdentifier(counter)
        let previous = last[key] ?? 0
        if value >= previous {
            if value > previous { counter.increment(by: Int64(value - previous)) }
        } else {
            counter.reset()
            counter.increment(by: Int64(value))
        }
        last[key] = value
    }

    // MARK: Latency histograms

    /// The `le` labels of ``latencyBucketsMicros``, in seconds.
    private static let bucketLabels: [String] = latencyBucketsMicros.map { seconds(micros: Double($0)) }

    /// Folds the runner's fine buckets into the exported ones: a fine bucket counts under the
    /// first exported bound at or above its own upper bound, so every count is below its `le`.
    /// The sum is estimated from each fine bucket's midpoint (within the fine resolution, 25%).
    static func fold(_ fine: [(upperBoundMicros: UInt64, count: UInt64)]) -> (cumulative: [UInt64], count: UInt64, sumMicros: Double) {
        var perBucket = [UInt64](repeating: 0, count: latencyBucketsMicros.count)
        var total: UInt64 = 0
        var sum = 0.0
        var lower: UInt64 = 0
        for (upper, count) in fine {
            defer { lower = upper }
            guard count > 0 else { continue }
            total &+= count
            sum += Double(count) * (Double(lower) + Double(upper)) / 2
            if let index = latencyBucketsMicros.firstIndex(where: { $0 >= upper }) {
                perBucket[index] &+= count
            }
        }
        var running: UInt64 = 0
        let cumulative = perBucket.map { count -> UInt64 in
            running &+= count
            return running
        }
        return (cumulative, total, sum)
    }

    private static func emitLatency(_ stages: [GatewayFigures.StageFigures], into buffer: inout [UInt8]) {
        let name = "chatgate_stage_latency_seconds"
        guard !stages.isEmpty else { return }
        buffer.append(contentsOf: "# HELP \(name) \(Help.stageLatency)\n# TYPE \(name) histogram\n".utf8)
        for stage in stages {
            let labels = "stage=\"\(escape(stage.name))\",kind=\"\(escape(stage.kind))\""
            let folded = fold(stage.latency)
            for (bound, count) in zip(bucketLabels, folded.cumulative) {
                buffer.append(contentsOf: "\(name)_bucket{\(labels),le=\"\(bound)\"} \(count)\n".utf8)
            }
            buffer.append(contentsOf: "\(name)_bucket{\(labels),le=\"+Inf\"} \(folded.count)\n".utf8)
            buffer.append(contentsOf: "\(name)_sum{\(labels)} \(seconds(micros: folded.sumMicros))\n".utf8)
            buffer.append(contentsOf: "\(name)_count{\(labels)} \(folded.count)\n".utf8)
        }
    }

    /// Whole microseconds as seconds in plain decimal notation (no exponent), trailing zeros trimmed.
    static func seconds(micros: Double) -> String {
        let rounded = Int64(micros.rounded())
        let whole = rounded / 1_000_000
        let fraction = rounded % 1_000_000
        guard fraction > 0 else { return "\(whole)" }
        var digits = String(fraction)
        digits = String(repeating: "0", count: max(0, 6 - digits.count)) + digits
        while digits.hasSuffix("0") { digits.removeLast() }
        return "\(whole).\(digits)"
    }

    /// A label value as the text format wants it: backslash, quote and line feed escaped.
    static func escape(_ value: String) -> String {
        var out = ""
        out.reserveCapacity(value.utf8.count)
        for character in value {
            switch character {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            default: out.append(character)
            }
        }
        return out
    }
}
