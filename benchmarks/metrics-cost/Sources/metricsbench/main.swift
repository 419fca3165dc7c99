import Atomics
import CoreMetrics
import Dispatch
import Foundation
import Metrics
import Prometheus

// Records the same stream of durations (1 µs … 4 ms, as stage latencies spread) into:
//  ours:   LatencyHistogram (2 relaxed atomic increments)
//  timer:  swift-metrics Timer on swift-prometheus's PrometheusMetricsFactory (its DurationHistogram)
//  counter pair: swift-metrics Counter increments vs ManagedAtomic increments
// on `threads` threads at once (the event loops and the pool record concurrently), best of 5.
let threads = Int(CommandLine.arguments.dropFirst().first ?? "2") ?? 2
let perThread = 2_000_000
let samples: [UInt64] = (0..<4096).map { i in UInt64(1_000 + (i * 7919) % 4_000_000) }

func measure(_ name: String, _ body: @escaping @Sendable (Int) -> Void) {
    var best = Double.infinity
    for _ in 0..<5 {
        let start = DispatchTime.now().uptimeNanoseconds
        DispatchQueue.concurrentPerform(iterations: threads) { t in body(t) }
        let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start)
        best = min(best, elapsed / Double(perThread))
    }
    print(String(format: "%-44@ %7.1f ns per record per thread (%d threads)", name as NSString, best, threads))
}

let ours = LatencyHistogram()
measure("LatencyHistogram.record (ours)") { _ in
    for i in 0..<perThread { ours.record(nanoseconds: samples[i & 4095]) }
}
let registry = PrometheusCollectorRegistry()
var factory = PrometheusMetricsFactory(registry: registry)
factory.defaultDurationHistogramBuckets = [25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000, 25_000, 100_000, 1_000_000].map { .microseconds($0) }
let timer = Metrics.Timer(label: "chatgate_stage_latency", dimensions: [("stage", "persist")], factory: factory)
measure("swift-metrics Timer → Prometheus histogram") { _ in
    for i in 0..<perThread { timer.recordNanoseconds(Int64(samples[i & 4095])) }
}
let atomic = ManagedAtomic<Int>(0)
measure("ManagedAtomic.wrappingIncrement (ours)") { _ in
    for _ in 0..<perThread { atomic.wrappingIncrement(ordering: .relaxed) }
}
let counter = Metrics.Counter(label: "chatgate_frames_in", dimensions: [], factory: factory)
measure("swift-metrics Counter → Prometheus counter") { _ in
    for _ in 0..<perThread { counter.increment() }
}
print(ours.count, atomic.load(ordering: .relaxed))
