import GatewayCore

extension MetricsExporter {
    /// The push figures beyond `chatgate_push_total{outcome=sent|failed}` and
    /// `chatgate_push_queued`, written as text like the latency families: retries, targets
    /// dropped, cancellations by confirmation, and per provider. Labels are bounded: `provider`
    /// is one of the four platforms, `outcome` one of three.
    static func emitPush(_ push: PushFigures, into buffer: inout [UInt8]) {
        func counter(_ name: String, _ help: String, _ value: Int) {
            buffer.append(contentsOf: "# HELP \(name) \(help)\n# TYPE \(name) counter\n\(name) \(value)\n".utf8)
        }
        counter("chatgate_push_retried_total", "Push sends that failed for a while and were scheduled again.", push.retried)
        counter("chatgate_push_targets_dropped_total", "Push targets removed because their provider reported them gone.", push.droppedTargets)
        counter("chatgate_push_cancelled_total", "Push notifications cancelled by a device's delivered or read.", push.cancelled)
        let name = "chatgate_push_provider_total"
        buffer.append(contentsOf: "# HELP \(name) Push notifications per provider, by outcome.\n# TYPE \(name) counter\n".utf8)
        for platform in PushPlatform.allCases {
            let figures = push.byProvider[platform] ?? PushFigures.PerProvider()
            for (outcome, value) in [("sent", figures.sent), ("failed", figures.failed), ("retried", figures.retried)] {
                buffer.append(contentsOf: "\(name){provider=\"\(platform.rawValue)\",outcome=\"\(outcome)\"} \(value)\n".utf8)
            }
        }
    }
}
