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

    static func make(configuration: GatewayConfiguration, clock: any GatewayClock = SystemClock(), logger: Logger) throws -> Bootstrap {
        guard configuration.store.kind == .sqlite else {
            throw BootstrapError("store.kind 'postgres' is not available in this build yet; use 'sqlite'")
        }
        let store = try EmbeddedStore(path: configuration.store.path, durability: configuration.store.durability, logger: logger)
        let stores = Stores(messages: store, groups: store)
        let hub = SessionHub(maxSessionsPerUser: configuration.limits.maxSessionsPerUser, maxConnections: configuration.limits.maxConnections)
        let pipeline = try Pipeline.build(
            configuration.pipeline, registry: try BuiltInStages.registry(), logger: logger, clock: clock, stores: stores, presence: hub,
            node: configuration.node)
        let faults = StoreFaults()
        let gateway = Gateway(configuration: configuration, stores: stores, hub: hub, pipeline: pipeline, clock: clock, logger: logger, faults: faults)
        let application = GatewayApplication(configuration: configuration, gateway: gateway, logger: logger, services: pipeline.services)
        return Bootstrap(configuration: configuration, application: application, store: store, faults: faults)
    }

    func serviceGroup(logger: Logger, signals: [UnixSignal] = [.sigterm, .sigint]) throws -> ServiceGroup {
        ServiceGroup(configuration: .init(services: try application.services(), gracefulShutdownSignals: signals, logger: logger))
    }
}

struct BootstrapError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
