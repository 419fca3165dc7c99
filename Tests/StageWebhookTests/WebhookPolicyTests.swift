import GatewayCore
import GatewayTesting
import Logging
import ServiceLifecycle
import Synchronization
import Testing

@testable import StageWebhook

/// The webhook's deadline and failure mode are the pipeline entry's (`timeout_ms`, `on_error`,
/// `on`), applied by the runner; the old keys under `settings:` are migrated with a warning.
@Suite("webhook: timeout_ms, on_error and on belong to the pipeline entry", .timeLimit(.minutes(1)))
struct WebhookPolicyTests {
    struct Allow: Stage, Authenticator {
        func process(_ envelope: inout Envelope, context: StageContext) async throws -> StageOutcome { .continue }
        func authenticate(token: String) async throws(GatewayError) -> Identity { Identity(user: token, expiresAt: nil) }
    }

    /// Keeps the messages logged at warning and above.
    final class Warnings: LogHandler, @unchecked Sendable {
        let lines = Mutex<[String]>([])
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .warning
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) {
            lines.withLock { $0.append(event.message.description) }
        }
    }

    let harness = StageHarness()

    func build(_ entry: PipelineEntry, logger: Logger = Logger(label: "t", factory: { _ in SwiftLogNoOpLogHandler() })) throws -> Pipeline {
        let registry = try StageRegistry([StageFactory(kind: "allow", settings: NoSettings.self) { _, _ in Allow() }, WebhookStage.factory])
        return try Pipeline.build(
            [PipelineEntry(stage: "allow", settings: JSONSettingsSource("{}")), entry], registry: registry, logger: logger, clock: harness.clock,
            stores: harness.stores, presence: harness.presence, node: NodeSettings())
    }

    func webhook(_ settings: String, on: Set<FrameKind> = [.send], timeoutMs: Int? = nil, onError: StagePolicy.OnError? = nil) -> PipelineEntry {
        PipelineEntry(stage: "webhook", on: on, timeoutMs: timeoutMs, onError: onError, settings: JSONSettingsSource(settings))
    }

    @Test func theKindDefaultsTo1000MillisecondsAndReject() throws {
        let pipeline = try build(webhook(#"{"url": "http://127.0.0.1:1/"}"#))
        #expect(pipeline.entries[1].policy == StagePolicy(timeoutMs: 1000, onError: .reject))
    }

    @Test func deprecatedSettingsKeysAreMigratedWithAWarning() throws {
        let warnings = Warnings()
        let logger = Logger(label: "t", factory: { _ in warnings })
        let pipeline = try build(webhook(#"{"url": "http://127.0.0.1:1/", "timeout_ms": 5000, "on_error": "continue"}"#), logger: logger)
        #expect(pipeline.entries[1].policy == StagePolicy(timeoutMs: 5000, onError: .continue))
        let logged = warnings.lines.withLock { $0 }
        #expect(logged.count == 1)
        #expect(logged.first?.contains("settings.timeout_ms, settings.on_error") == true, "\(logged)")
    }

    @Test func theEntrysKeysWin() throws {
        let pipeline = try build(
            webhook(#"{"url": "http://127.0.0.1:1/", "timeout_ms": 5000, "on_error": "continue"}"#, timeoutMs: 250, onError: .reject))
        #expect(pipeline.entries[1].policy == StagePolicy(timeoutMs: 250, onError: .reject))
        let stage = try #require(pipeline.entries[1].stage as? WebhookStage)
        #expect(stage.timeoutMs == 250, "the HTTP call is bounded by the entry's timeout too")
    }

    @Test func settingsOnNarrowsTheEntrysOn() throws {
        let pipeline = try build(webhook(#"{"url": "http://127.0.0.1:1/", "on": ["typing"]}"#, on: [.send, .typing]))
        #expect(pipeline.entries[1].on == [.typing])
    }

    @Test func theRunnersDeadlineBoundsTheCall() async throws {
        let server = try await WebhookTestServer.start { _ in .init(hold: true) }
        // A long HTTP bound: only the runner's deadline, on the stepped clock, can end this call.
        let pipeline = try build(webhook(#"{"url": "\#(server.url)"}"#, timeoutMs: 30_000))
        let group = ServiceGroup(services: pipeline.services, logger: harness.logger)
        let runner = Task { try await group.run() }
        let deadline = harness.clock.nowMillis() + 30_000
        let run = Task {
            var envelope = harness.send("hello")
            return await pipeline.run(&envelope)
        }
        try await harness.clock.waitForTimer(at: deadline)
        harness.clock.advance(by: 30_000)
        let error = try #require(await run.value.rejection)
        #expect(error.code == .unavailable)
        #expect(error.message == "the webhook stage did not answer within 30000 ms")
        #expect(pipeline.entries[1].stats.errors.load(ordering: .relaxed) == 1)
        await group.triggerGracefulShutdown()
        try await runner.value
        await server.stop()
    }
}
