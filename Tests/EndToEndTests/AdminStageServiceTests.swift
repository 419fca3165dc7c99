import Foundation
import GatewayConfig
import GatewayCore
import GatewayServer
import GatewayTesting
import Logging
import ServiceLifecycle
import Testing

@testable import chatgate

/// A reload starts the new pipeline's stage services and stops the old ones' (gracefully),
/// while the node keeps running; the node's shutdown stops the ones in force.
@Suite("Admin reload: stage services")
struct AdminStageServiceTests {
    struct ProbeSettings: Codable, Sendable {
        var tag: String
    }

    /// A service that records when it starts and when it is asked to stop.
    struct ProbeService: Service {
        let tag: String
        let events: LogCapture

        func run() async throws {
            events.append("\(tag) started")
            try? await gracefulShutdown()
            events.append("\(tag) stopped")
        }
    }

    struct ProbeStage: Stage {
        let service: ProbeService
        func process(_ envelope: inout Envelope, context: StageContext) async throws -> StageOutcome { .continue }
        var services: [any Service] { [service] }
    }

    static func config(tag: String, directory: URL) -> String {
        TestGateway.yaml(
            directory: directory, extra: "",
            pipeline: """
                  - stage: auth
                    settings: { hs256_secret: "\(TestGateway.secret)" }
                  - stage: id
                  - stage: persist
                  - stage: fanout
                  - stage: test.probe
                    settings: { tag: \(tag) }
                """)
    }

    @Test func reloadReplacesTheStagesServices() async throws {
        let events = LogCapture()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("chatgate-probe-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("config.yaml").path
        try Self.config(tag: "one", directory: directory).write(toFile: path, atomically: true, encoding: .utf8)

        let probe = StageFactory(kind: "test.probe", settings: ProbeSettings.self) { settings, _ in
            ProbeStage(service: ProbeService(tag: settings.tag, events: events))
        }
        let registry = try StageRegistry(BuiltInStages.factories + [probe])
        let configuration = try ConfigLoader.load(path: path, environment: [:])
        let logger = Logger(label: "probe", factory: { _ in SwiftLogNoOpLogHandler() })
        let store = InMemoryStore()
        let stores = Stores(store)
        let hub = SessionHub(maxSessionsPerUser: 8)
        let clock = SystemClock()
        let build: @Sendable (GatewayConfiguration) throws -> Pipeline = { config in
            try Pipeline.build(config.pipeline, registry: registry, logger: logger, clock: clock, stores: stores, presence: hub, node: config.node)
        }
        let gateway = Gateway(configuration: configuration, stores: stores, hub: hub, pipeline: try build(configuration), clock: clock, logger: logger)
        let application = GatewayApplication(
            configuration: configuration, gateway: gateway, logger: logger,
            reloadPipeline: { try build(try ConfigLoader.load(path: path, environment: [:])) })
        let group = ServiceGroup(configuration: .init(services: try application.services(), gracefulShutdownSignals: [], logger: logger))
        let runner = Task { try await group.run() }
        _ = await application.listeningPorts()
        #expect(await events.wait { $0 == "one started" })

        try Self.config(tag: "two", directory: directory).write(toFile: path, atomically: true, encoding: .utf8)
        let pipeline = try await application.reloadPipeline()
        #expect(pipeline.entries.last?.settings["tag"]?.stringValue == "two")
        #expect(await events.wait { $0 == "two started" })
        #expect(await events.wait { $0 == "one stopped" })
        #expect(!events.lines.contains("two stopped"), "the new pipeline's service runs on")

        // A failed reload leaves the services alone.
        try "pipeline: 3".write(toFile: path, atomically: true, encoding: .utf8)
        await #expect(throws: ReloadError.self) { try await application.reloadPipeline() }
        #expect(gateway.pipeline === pipeline)

        await group.triggerGracefulShutdown()
        try await runner.value
        #expect(events.lines.contains("two stopped"), "the node's shutdown stops the services in force")
        #expect(events.lines.filter { $0.hasSuffix("started") }.count == 2)
    }
}
