import GatewayCore

/// One reading of the node's figures: what `/admin/stats`, `/metrics` and the dashboard show.
///
/// Read once per request from the lock-free counters, the session hub and the store, so the
/// JSON stats and the Prometheus exposition never disagree on where a figure comes from.
/// Push figures come from the pipeline's push stage (0 without one), media figures from the
/// media store (0 without one).
struct GatewayFigures: Sendable {
    struct StageFigures: Sendable {
        var name: String
        var kind: String
        var processed: Int
        var rejected: Int
        var errors: Int
        var p50Micros: UInt64
        var p99Micros: UInt64
        /// The runner's latency buckets (upper bound in µs, count), finest resolution.
        var latency: [(upperBoundMicros: UInt64, count: UInt64)]
    }

    var uptimeSeconds: Int64
    var websocketConnections: Int
    var longpollConnections: Int
    var usersOnline: Int
    var framesIn: Int
    var framesOut: Int
    var messagesAccepted: Int
    var messagesRejected: Int
    var liveDeliveries: Int
    var slowConsumerCloses: Int
    var pendingCommits: Int
    /// Batches the store refused for inbox order since start (PostgreSQL).
    var orderRefusals: Int
    var stages: [StageFigures]
    /// Nil when the store could not answer (it is closed or failing).
    var store: StoreStatistics?
    var pushSent = 0
    var pushFailed = 0
    var pushQueued = 0
    /// Every push figure, per provider too (`/metrics`); zeros without a push stage.
    var push = PushFigures()
    var mediaUploads = 0
    var mediaBytesIn = 0
    var mediaBytesStored = 0
    var reloads: ReloadCounts

    static func read(gateway: Gateway, reloads: ReloadCounts) async -> GatewayFigures {
        let store = try? await gateway.stores.messages.statistics()
        let stages = gateway.pipeline.entries.map { entry in
            StageFigures(
                name: entry.name, kind: entry.kind,
                processed: entry.stats.processed.load(ordering: .relaxed),
                rejected: entry.stats.rejected.load(ordering: .relaxed),
                errors: entry.stats.errors.load(ordering: .relaxed),
                p50Micros: entry.stats.latency.percentile(0.50),
                p99Micros: entry.stats.latency.percentile(0.99),
                latency: entry.stats.latency.snapshot())
        }
        let s = gateway.stats
        var figures = GatewayFigures(
            uptimeSeconds: max(0, (gateway.clock.nowMillis() - s.startedAt) / 1000),
            websocketConnections: gateway.hub.count(of: .websocket),
            longpollConnections: gateway.hub.count(of: .longpoll),
            usersOnline: gateway.hub.onlineUserCount,
            framesIn: s.framesIn.load(ordering: .relaxed),
            framesOut: s.framesOut.load(ordering: .relaxed),
            messagesAccepted: s.messagesAccepted.load(ordering: .relaxed),
            messagesRejected: s.messagesRejected.load(ordering: .relaxed),
            liveDeliveries: s.deliveries.load(ordering: .relaxed),
            slowConsumerCloses: s.slowConsumers.load(ordering: .relaxed),
            pendingCommits: gateway.committer.pendingCount,
            orderRefusals: gateway.committer.orderRefusals,
            stages: stages,
            store: store,
            reloads: reloads)
        if let source = gateway.pipeline.entries.lazy.compactMap({ $0.stage as? any PushFigureSource }).first {
            let push = await source.pushFigures()
            figures.push = push
            figures.pushSent = push.sent
            figures.pushFailed = push.failed
            figures.pushQueued = push.queued
        }
        if let media = try? await gateway.stores.media?.statistics() {
            figures.mediaUploads = media.uploads
            figures.mediaBytesIn = Int(media.bytesIn)
            figures.mediaBytesStored = Int(media.bytesStored)
        }
        return figures
    }

    /// The `/admin/stats` body (PROTOCOL.md section 7).
    var json: JSONValue {
        let store = self.store ?? StoreStatistics(messages: 0, inboxEntries: 0, bytes: 0)
        let stages: [JSONValue] = self.stages.map { stage in
            [
                "name": .string(stage.name), "kind": .string(stage.kind),
                "processed": .int(stage.processed), "rejected": .int(stage.rejected), "errors": .int(stage.errors),
                "p50_us": .int(Int64(clamping: stage.p50Micros)), "p99_us": .int(Int64(clamping: stage.p99Micros)),
            ]
        }
        return [
            "uptime_s": .int(uptimeSeconds),
            "connections": ["websocket": .int(websocketConnections), "longpoll": .int(longpollConnections)],
            "users_online": .int(usersOnline),
            "frames_in": .int(framesIn),
            "frames_out": .int(framesOut),
            "messages_accepted": .int(messagesAccepted),
            "messages_rejected": .int(messagesRejected),
            "stages": .array(stages),
            "store": ["messages": .int(store.messages), "inbox_entries": .int(store.inboxEntries), "bytes": .int(store.bytes)],
            "push": ["sent": .int(pushSent), "failed": .int(pushFailed), "queued": .int(pushQueued)],
            "media": ["uploads": .int(mediaUploads), "bytes_in": .int(mediaBytesIn), "bytes_stored": .int(mediaBytesStored)],
        ]
    }
}
