import Testing

@testable import GatewayServer

@Suite("GatewayServer: /metrics counters follow their sources across scrapes", .timeLimit(.minutes(1)))
struct MetricsExporterTests {
    func figures(framesIn: Int, processed: Int) -> GatewayFigures {
        GatewayFigures(
            uptimeSeconds: 1, websocketConnections: 0, longpollConnections: 0, usersOnline: 0, framesIn: framesIn, framesOut: 0,
            messagesAccepted: 0, messagesRejected: 0, liveDeliveries: 0, slowConsumerCloses: 0, pendingCommits: 0, orderRefusals: framesIn / 4,
            stages: [
                .init(name: "auth", kind: "auth", processed: processed, rejected: 0, errors: 0, p50Micros: 0, p99Micros: 0, latency: [(50, UInt64(processed))])
            ],
            store: nil, reloads: ReloadCounts())
    }

    func lines(_ exporter: MetricsExporter, _ figures: GatewayFigures) -> [String] {
        String(decoding: exporter.render(figures), as: UTF8.self).split(separator: "\n").map(String.init)
    }

    @Test func countersReadWhatTheirSourcesReadScrapeAfterScrape() {
        let exporter = MetricsExporter()
        #expect(lines(exporter, figures(framesIn: 5, processed: 2)).contains("chatgate_frames_in_total 5"))
        let second = lines(exporter, figures(framesIn: 12, processed: 9))
        #expect(second.contains("chatgate_frames_in_total 12"))
        #expect(second.contains("chatgate_commit_order_refusals_total 3"))
        #expect(second.contains(#"chatgate_stage_processed_total{stage="auth",kind="auth"} 9"#))
        #expect(lines(exporter, figures(framesIn: 12, processed: 9)).contains("chatgate_frames_in_total 12"), "an unchanged source, an unchanged counter")
        // A source that started over (a reload's new stage): the counter resets to its reading.
        #expect(lines(exporter, figures(framesIn: 13, processed: 1)).contains(#"chatgate_stage_processed_total{stage="auth",kind="auth"} 1"#))
    }
}
