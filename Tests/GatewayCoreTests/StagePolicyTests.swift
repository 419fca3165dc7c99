import GatewayCore
import GatewayTesting
import Logging
import Testing

/// A stage that rewrites the body, then does not answer until it is cancelled.
struct HangingStage: Stage {
    func process(_ envelope: inout Envelope, context: StageContext) async throws -> StageOutcome {
        envelope.body = "changed by the hanging stage"
        // Not a synchronisation sleep: the stage never answers, and the runner cancels it.
        try await Task.sleep(for: .seconds(3600))
        return .continue
    }
}

/// Appends a mark to a string body, to show which stages ran and in what order.
struct MarkStage: Stage {
    let mark: String
    func process(_ envelope: inout Envelope, context: StageContext) async throws -> StageOutcome {
        if case .string(let text)? = envelope.body { envelope.body = .string(text + mark) }
        return .continue
    }
}

/// Rewrites the body, then throws.
struct FailingStage: Stage {
    func process(_ envelope: inout Envelope, context: StageContext) async throws -> StageOutcome {
        envelope.body = "changed by the failing stage"
        throw CancellationError()
    }
}

struct NoIDs: Stage, MessageIDSource {
    func process(_ envelope: inout Envelope, context: StageContext) async throws -> StageOutcome { .continue }
    func nextID(after floor: UInt64) -> UInt64 { floor + 1 }
}

struct PassStage: Stage {
    func process(_ envelope: inout Envelope, context: StageContext) async throws -> StageOutcome { .continue }
}

/// A config error that already names its place, as the config module's `ConfigError` does.
struct PlacedError: LocatedConfigError {
    var description: String { "c.yaml:9:5: error: pipeline[1].settings.x: bad" }
}

@Suite("Stage policy: timeout_ms and on_error for every stage, on a stepped clock", .timeLimit(.minutes(1)))
struct StagePolicyTests {
    static let registry: StageRegistry = {
        var registry = StageRegistry()
        try! registry.register(StageFactory(kind: "allow", settings: NoSettings.self) { _, _ in AllowAll() })
        try! registry.register(StageFactory(kind: "test.hang", settings: NoSettings.self) { _, _ in HangingStage() })
        try! registry.register(StageFactory(kind: "test.fail", settings: NoSettings.self) { _, _ in FailingStage() })
        try! registry.register(StageFactory(kind: "test.mark", settings: NoSettings.self) { _, context in MarkStage(mark: "+" + context.name) })
        try! registry.register(StageFactory(kind: "test.ids", settings: NoSettings.self) { _, _ in NoIDs() })
        try! registry.register(StageFactory(kind: "test.recipients", settings: NoSettings.self, provides: [.recipients]) { _, _ in PassStage() })
        try! registry.register(
            StageFactory(kind: "test.durable", settings: NoSettings.self, provides: [.durability], after: [.messageIDs], requires: [.recipients]) { _, _ in
                PassStage()
            })
        try! registry.register(StageFactory(kind: "test.placed", settings: NoSettings.self) { _, _ -> PassStage in throw PlacedError() })
        return registry
    }()

    let clock = TestClock()

    func build(_ entries: [PipelineEntry]) throws -> Pipeline {
        try Pipeline.build(
            entries, registry: Self.registry, logger: Logger(label: "test"), clock: clock, stores: Stores(InMemoryStore()), presence: NobodyOnline(),
            node: NodeSettings())
    }

    func entry(_ kind: String, name: String? = nil, timeoutMs: Int? = nil, onError: StagePolicy.OnError? = nil) -> PipelineEntry {
        PipelineEntry(stage: kind, name: name, timeoutMs: timeoutMs, onError: onError, settings: FixedSettings(action: .pass))
    }

    func envelope() -> Envelope {
        Envelope(
            kind: .send, sender: Principal(user: "alice", device: "d", session: "s", transport: .websocket), ref: "r1", frame: JSONObject(),
            to: .user("bob"), body: "hi", clientMsgID: "c", timestamp: 0)
    }

    /// Runs the pipeline in a task, steps the clock past the hanging stage's deadline once the
    /// runner waits on it, and returns the outcome and the envelope.
    func runPastDeadline(_ pipeline: Pipeline, timeoutMs: Int64) async throws -> (StageOutcome, Envelope) {
        let deadline = clock.nowMillis() + timeoutMs
        let run = Task {
            var e = envelope()
            let outcome = await pipeline.run(&e)
            return (outcome, e)
        }
        try await clock.waitForTimer(at: deadline)
        clock.advance(by: timeoutMs)
        return await run.value
    }

    @Test func aStagePastItsDeadlineIsRejectedUnavailableAndCountsAsAnError() async throws {
        let pipeline = try build([entry("allow"), entry("test.hang", name: "slow", timeoutMs: 500), entry("test.mark", name: "after")])
        let (outcome, envelope) = try await runPastDeadline(pipeline, timeoutMs: 500)
        let error = try #require(outcome.rejection)
        #expect(error.code == .unavailable)
        #expect(error.retryAfterMs == 1000)
        #expect(error.message.contains("slow"))
        #expect(envelope.body == "hi", "the stage's changes are dropped")
        #expect(pipeline.entries[1].stats.errors.load(ordering: .relaxed) == 1)
        #expect(pipeline.entries[1].stats.processed.load(ordering: .relaxed) == 1)
        #expect(pipeline.entries[2].stats.processed.load(ordering: .relaxed) == 0)
        #expect(clock.pendingDeadlines.isEmpty)
    }

    @Test func aDeadlineNotYetReachedDoesNotFire() async throws {
        let pipeline = try build([entry("allow"), entry("test.hang", name: "slow", timeoutMs: 500)])
        let deadline = clock.nowMillis() + 500
        let run = Task {
            var e = envelope()
            return await pipeline.run(&e)
        }
        try await clock.waitForTimer(at: deadline)
        clock.advance(by: 499)
        #expect(clock.pendingTimers(at: deadline) == 1, "499 ms of 500: the runner still waits")
        clock.advance(by: 1)
        #expect(await run.value.rejection?.code == .unavailable)
    }

    @Test func onErrorContinueLetsTheFrameGoOnUnchangedAfterATimeout() async throws {
        let pipeline = try build([
            entry("allow"), entry("test.hang", name: "slow", timeoutMs: 200, onError: .continue), entry("test.mark", name: "after"),
        ])
        let (outcome, envelope) = try await runPastDeadline(pipeline, timeoutMs: 200)
        #expect(outcome.isContinue)
        #expect(envelope.body == "hi+after")
        #expect(pipeline.entries[1].stats.errors.load(ordering: .relaxed) == 1)
    }

    @Test func onErrorContinueLetsTheFrameGoOnUnchangedAfterAThrow() async throws {
        let pipeline = try build([entry("allow"), entry("test.fail", onError: .continue), entry("test.mark", name: "after")])
        var e = envelope()
        #expect(await pipeline.run(&e).isContinue)
        #expect(e.body == "hi+after")
        #expect(pipeline.entries[1].stats.errors.load(ordering: .relaxed) == 1)
        #expect(pipeline.entries[2].stats.processed.load(ordering: .relaxed) == 1)
    }

    @Test func onErrorRejectAnswersTheThrownErrorsCode() async throws {
        let pipeline = try build([entry("allow"), entry("test.fail", onError: .reject), entry("test.mark", name: "after")])
        var e = envelope()
        #expect(await pipeline.run(&e).rejection?.code == .internal)
        #expect(pipeline.entries[2].stats.processed.load(ordering: .relaxed) == 0)
    }

    @Test func aStageThatAnswersInTimeKeepsItsChangesAndLeavesNoTimer() async throws {
        let pipeline = try build([entry("allow"), entry("test.mark", name: "quick", timeoutMs: 1000), entry("test.mark", name: "next")])
        var e = envelope()
        #expect(await pipeline.run(&e).isContinue)
        #expect(e.body == "hi+quick+next")
        #expect(clock.pendingDeadlines.isEmpty)
        #expect(pipeline.entries[1].policy == StagePolicy(timeoutMs: 1000, onError: .reject))
        #expect(pipeline.entries[2].policy == .default)
    }

    // MARK: Roles and order

    @Test func rolesComeFromTheFactoriesNotFromCasts() throws {
        let pipeline = try build([entry("allow"), entry("test.ids"), entry("test.durable"), entry("test.recipients")])
        #expect(pipeline.authenticator != nil)
        #expect(pipeline.idSource != nil)
        #expect(pipeline.entries[0].provides == [.authenticator])
        #expect(pipeline.entries[1].provides == [.messageIDs])
        #expect(Self.registry.kinds(providing: .recipients) == ["test.recipients"])
    }

    @Test func anAfterRoleMustBeProvidedByAnEarlierEntry() throws {
        let early = try #require(throws: Pipeline.BuildError.self) {
            try build([entry("allow"), entry("test.durable"), entry("test.ids"), entry("test.recipients")])
        }
        #expect(early.index == 1)
        #expect(early.message == "stage 'test.durable' must come after the stage that provides message_ids ('test.ids')")
        let missing = try #require(throws: Pipeline.BuildError.self) {
            try build([entry("allow"), entry("test.durable"), entry("test.recipients")])
        }
        #expect(missing.message == "stage 'test.durable' needs a stage before it that provides message_ids ('test.ids')")
    }

    @Test func aRequiredRoleMayStandAnywhere() throws {
        let error = try #require(throws: Pipeline.BuildError.self) { try build([entry("allow"), entry("test.ids"), entry("test.durable")]) }
        #expect(error.message == "stage 'test.durable' needs a stage that provides recipients ('test.recipients')")
        _ = try build([entry("allow"), entry("test.ids"), entry("test.durable"), entry("test.recipients")])
    }

    @Test func everyPipelineNeedsAnAuthenticator() throws {
        let error = try #require(throws: Pipeline.BuildError.self) { try build([entry("test.mark")]) }
        #expect(error.message.hasPrefix("the pipeline needs a stage that provides authenticator ('allow')"))
    }

    @Test func aLocatedConfigErrorPassesThroughUnchanged() throws {
        let error = try #require(throws: PlacedError.self) { try build([entry("allow"), entry("test.placed")]) }
        #expect(error.description == "c.yaml:9:5: error: pipeline[1].settings.x: bad")
    }

    @Test func aDeclaredRoleWithoutItsTypeIsABuildError() throws {
        var registry = StageRegistry()
        try registry.register(StageFactory(kind: "allow", settings: NoSettings.self) { _, _ in AllowAll() })
        try registry.register(
            StageFactory(kind: "test.liar", provides: [.messageIDs]) { _ in BuiltStage(stage: PassStage(), settings: .null) })
        let error = try #require(throws: Pipeline.BuildError.self) {
            try Pipeline.build(
                [entry("allow"), entry("test.liar")], registry: registry, logger: Logger(label: "t"), clock: clock, stores: Stores(InMemoryStore()),
                presence: NobodyOnline(), node: NodeSettings())
        }
        #expect(error.message.contains("declares the message_ids role but built no MessageIDSource"))
    }
}
