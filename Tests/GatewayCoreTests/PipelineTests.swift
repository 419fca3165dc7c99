import GatewayCore
import GatewayTesting
import Logging
import Testing

/// A stage that does what it is told, for testing the runner.
struct ScriptedStage: Stage {
    enum Action: Codable, Sendable { case pass, reject, fail, rewrite }
    struct Settings: Codable, Sendable { var action: Action = .pass }
    let action: Action

    func process(_ envelope: inout Envelope, context: StageContext) async throws -> StageOutcome {
        switch action {
        case .pass: return .continue
        case .reject: return .reject(GatewayError(.custom("nope")!, "scripted"))
        case .fail: throw CancellationError()
        case .rewrite:
            envelope.body = "rewritten"
            return .continue
        }
    }
}

struct FixedSettings: SettingsSource {
    let action: ScriptedStage.Action
    func decode<T: Decodable>(_ type: T.Type) throws -> T {
        if let settings = ScriptedStage.Settings(action: action) as? T { return settings }
        if let none = NoSettings() as? T { return none }
        throw GatewayError.badFrame("unexpected settings type")
    }
}

struct AllowAll: Stage, Authenticator {
    func process(_ envelope: inout Envelope, context: StageContext) async throws -> StageOutcome { .continue }
    func authenticate(token: String) async throws(GatewayError) -> Identity { Identity(user: token, expiresAt: nil) }
}

struct NobodyOnline: PresenceQuery {
    func isOnline(_ user: String) -> Bool { false }
}

@Suite("Pipeline runner and registry")
struct PipelineTests {
    static let registry: StageRegistry = {
        var registry = StageRegistry()
        try! registry.register(StageFactory(kind: "test.scripted", settings: ScriptedStage.Settings.self) { settings, _ in ScriptedStage(action: settings.action) })
        try! registry.register(StageFactory(kind: "allow", settings: NoSettings.self) { _, _ in AllowAll() })
        return registry
    }()

    func build(_ actions: [ScriptedStage.Action]) throws -> Pipeline {
        var entries = [PipelineEntry(stage: "allow", settings: FixedSettings(action: .pass))]
        for (index, action) in actions.enumerated() {
            entries.append(PipelineEntry(stage: "test.scripted", name: "s\(index)", settings: FixedSettings(action: action)))
        }
        let store = InMemoryStore()
        return try Pipeline.build(
            entries, registry: Self.registry, logger: Logger(label: "test"), clock: TestClock(), stores: Stores(store), presence: NobodyOnline(),
            node: NodeSettings())
    }

    func envelope() -> Envelope {
        Envelope(
            kind: .send, sender: Principal(user: "alice", device: "d", session: "s", transport: .websocket), ref: nil, frame: JSONObject(),
            to: .user("bob"), body: "hi", clientMsgID: "c", timestamp: 0)
    }

    @Test func stopsAtTheFirstRejectAndCountsOutcomes() async throws {
        let pipeline = try build([.rewrite, .reject, .pass])
        var e = envelope()
        let outcome = await pipeline.run(&e)
        guard case .reject(let error) = outcome else { Issue.record("not rejected"); return }
        #expect(error.code.rawValue == "x_nope")
        #expect(e.body == "rewritten")
        let counts = pipeline.entries.map { ($0.stats.processed.load(ordering: .relaxed), $0.stats.rejected.load(ordering: .relaxed)) }
        #expect(counts.map(\.0) == [1, 1, 1, 0])
        #expect(counts.map(\.1) == [0, 0, 1, 0])
        #expect(pipeline.entries[1].stats.latency.count == 1)
    }

    @Test func aThrowingStageIsAnErrorAndTheClientSeesInternal() async throws {
        let pipeline = try build([.fail, .pass])
        var e = envelope()
        guard case .reject(let error) = await pipeline.run(&e) else { Issue.record("not rejected"); return }
        #expect(error.code == .internal)
        #expect(pipeline.entries[1].stats.errors.load(ordering: .relaxed) == 1)
    }

    @Test func stagesOnlySeeTheirFrameKinds() async throws {
        let pipeline = try build([.reject])
        var typing = Envelope(
            kind: .typing, sender: Principal(user: "a", device: "d", session: "s", transport: .websocket), ref: nil, frame: JSONObject(),
            timestamp: 0)
        guard case .continue = await pipeline.run(&typing) else { Issue.record("typing went through a send-only stage"); return }
    }

    @Test func registryRefusesDuplicatesAndBadKinds() {
        var registry = StageRegistry()
        #expect(throws: Never.self) { try registry.register(StageFactory(kind: "acme.x", settings: NoSettings.self) { _, _ in AllowAll() }) }
        #expect(throws: StageRegistry.DuplicateKindError.self) {
            try registry.register(StageFactory(kind: "acme.x", settings: NoSettings.self) { _, _ in AllowAll() })
        }
        #expect(throws: StageRegistry.InvalidKindError.self) {
            try registry.register(StageFactory(kind: "Acme X", settings: NoSettings.self) { _, _ in AllowAll() })
        }
    }

    @Test func buildErrorsNameTheEntry() throws {
        let entries = [
            PipelineEntry(stage: "allow", settings: FixedSettings(action: .pass)),
            PipelineEntry(stage: "missing", settings: FixedSettings(action: .pass)),
        ]
        let error = try #require(throws: Pipeline.BuildError.self) {
            try Pipeline.build(
                entries, registry: Self.registry, logger: Logger(label: "t"), clock: TestClock(), stores: Stores(InMemoryStore()),
                presence: NobodyOnline(), node: NodeSettings())
        }
        #expect(error.description.hasPrefix("pipeline[1]: unknown stage kind 'missing'"))
    }

    @Test func latencyHistogramPercentiles() {
        let histogram = LatencyHistogram()
        for micros in 1...1000 { histogram.record(nanoseconds: UInt64(micros) * 1000) }
        let p50 = histogram.percentile(0.5)
        let p99 = histogram.percentile(0.99)
        #expect(p50 >= 500 && p50 <= 640, "p50 \(p50)")
        #expect(p99 >= 990 && p99 <= 1280, "p99 \(p99)")
    }
}

@Suite("Committer: group commit and the fault seam")
struct CommitterTests {
    func pending(_ n: Int, from: String = "alice") -> PendingMessage {
        PendingMessage(
            message: StoredMessage(id: UInt64(n), from: from, to: .user("bob"), timestamp: 0, clientMsgID: "c\(n)", body: Array("1".utf8)),
            inboxes: [from, "bob"])
    }

    struct Increasing: MessageIDSource {
        func nextID(after floor: UInt64) -> UInt64 { floor + 1 }
    }

    @Test func concurrentCommitsShareBatchesAndKeepSeqsContiguous() async throws {
        let store = InMemoryStore()
        let committer = Committer(store: store, maxPending: 10_000, logger: Logger(label: "t")) { _, _ in }
        try await withThrowingTaskGroup(of: CommitOutcome.self) { group in
            for n in 1...500 { group.addTask { try await committer.commit(self.pending(n), ids: Increasing()) } }
            for try await _ in group {}
        }
        let inbox = try await store.inbox(user: "bob", after: 0, limit: 1000)
        #expect(inbox.entries.map(\.seq) == Array(1...500))
        #expect(inbox.entries.map(\.message.id) == inbox.entries.map(\.message.id).sorted())
    }

    @Test func failedCommitsStoreNothingAndRecover() async throws {
        let store = InMemoryStore()
        let faults = StoreFaults()
        let committer = Committer(store: store, maxPending: 100, faults: faults, logger: Logger(label: "t")) { _, _ in }
        faults.failNextCommits(1)
        await #expect(throws: GatewayError.self) { try await committer.commit(pending(1)) }
        #expect(try await store.inboxHead(user: "bob") == 0)
        _ = try await committer.commit(pending(2))
        #expect(try await store.inboxHead(user: "bob") == 1)
    }

    @Test func aFullQueueAnswersUnavailable() async throws {
        let store = InMemoryStore()
        let faults = StoreFaults()
        faults.delayCommits(byMilliseconds: 200)
        let committer = Committer(store: store, maxPending: 2, faults: faults, logger: Logger(label: "t")) { _, _ in }
        let results = await withTaskGroup(of: Bool.self) { group in
            for n in 1...20 { group.addTask { (try? await committer.commit(self.pending(n))) != nil } }
            var ok = 0
            for await success in group where success { ok += 1 }
            return ok
        }
        #expect(results < 20)
        #expect(results >= 1)
        // Exactly the acknowledged ones are stored.
        #expect(try await store.inboxHead(user: "bob") == Int64(results))
    }

    @Test func idsAreQueuedInIncreasingOrder() async throws {
        struct Counter: MessageIDSource {
            func nextID(after floor: UInt64) -> UInt64 { floor + 100 }
        }
        let store = InMemoryStore()
        let committer = Committer(store: store, maxPending: 10, logger: Logger(label: "t")) { _, _ in }
        _ = try await committer.commit(pending(50), ids: Counter())
        let late = try await committer.commit(pending(10), ids: Counter())
        guard case .stored(let message, _) = late else { Issue.record("not stored"); return }
        #expect(message.id == 150)
    }
}
