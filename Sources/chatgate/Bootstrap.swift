import GatewayConfig
import GatewayCore
import GatewayServer
import Logging
import SQLiteStore
import ServiceLifecycle
import UnixSignals

/// The wiring of a gateway from its configuration: store, session hub, pipeline, listeners.
/// `chatgate serve` runs it; the end-to-end tests boot the same wiring in-process.
struct Bootstrap {
    let configuration: GatewayConfiguration
    let application: GatewayApplication
    let store: EmbeddedStore
    let faults: StoreFaults

    /// - Parameter configPath: the file `configuration` came from; a reload (SIGHUP,
    ///   `POST /admin/reload`) re-reads it. Without one there is nothing to reload.
    static func make(
        configuration: GatewayConfiguration, configPath: String? = nil, clock: any GatewayClock = SystemClock(), logger: Logger
    ) throws -> Bootstrap {
        guard configuration.store.kind == .sqlite else {
            throw BootstrapError("store.kind 'postgres' is not available in this build yet; use 'sqlite'")
        }
        let store = try EmbeddedStore(path: configuration.store.path, durability: configuration.store.durability, logger: logger)
        var withMedia = Stores(store)
        withMedia.media = try MediaWiring.make(configuration.media, metadata: store, groups: store, clock: clock, logger: logger)
        let stores = withMedia
        let hub = SessionHub(
            maxSessionsPerUser: configuration.limits.maxSessionsPerUser, maxConnections: configuration.limits.maxConnections,
            maxConnectionsPerIP: configuration.limits.maxConnectionsPerIP)
        let pipeline = try Pipeline.build(
            configuration.pipeline, registry: try BuiltInStages.registry(), logger: logger, clock: clock, stores: stores, presence: hub,
            node: configuration.node)
        let faults = StoreFaults()
        let gateway = Gateway(configuration: configuration, stores: stores, hub: hub, pipeline: pipeline, clock: clock, logger: logger, faults: faults)
        // A reload takes only the new `pipeline:`; the node, store and listeners keep what they started with.
        let reload: PipelineSource? = configPath.map { path in
            { @Sendable in
                let fresh = try ConfigLoader.load(path: path, stageKinds: Set(BuiltInStages.factories.map(\.kind)))
                return try Pipeline.build(
                    fresh.pipeline, registry: try BuiltInStages.registry(), logger: logger, clock: clock, stores: stores, presence: hub,
                    node: configuration.node)
            }
        }
        // The application runs the pipeline's services itself, so a reload can replace them.
        let application = GatewayApplication(configuration: configuration, gateway: gateway, logger: logger, reloadPipeline: reload)
        return Bootstrap(configuration: configuration, application: application, store: store, faults: faults)
    }

    /// - Parameter reloadSignal: a signal that reloads the pipeline (`serve` uses SIGHUP).
    func serviceGroup(logger: Logger, signals: [UnixSignal] = [.sigterm, .sigint], reloadSignal: UnixSignal? = nil) throws -> ServiceGroup {
        var services = try application.services()
        if let reloadSignal {
            services.append(.init(service: HangupReloader(signal: reloadSignal, application: application, logger: logger), successTerminationBehavior: .ignore))
        }
        return ServiceGroup(configuration: .init(services: services, gracefulShutdownSignals: signals, logger: logger))
    }
}

struct BootstrapError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
