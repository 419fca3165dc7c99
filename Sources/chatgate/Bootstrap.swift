import GatewayConfig
import GatewayCore
import GatewayServer
import Logging
import PostgresStore
import SQLiteStore
import ServiceLifecycle
import UnixSignals

/// The wiring of a gateway from its configuration: store, session hub, pipeline, listeners.
/// `chatgate serve` runs it; the end-to-end tests boot the same wiring in-process.
struct Bootstrap {
    let configuration: GatewayConfiguration
    let application: GatewayApplication
    let store: any MessageStore & GroupStore & ReceiptStore
    let faults: StoreFaults
    /// This node's lease in PostgreSQL (store kind `postgres`), renewed by a service.
    let lease: NodeLease?
    /// Cross-node delivery and presence (store kind `postgres`), run as a service.
    let bus: PostgresClusterBus?

    /// - Parameter configPath: the file `configuration` came from; a reload (SIGHUP,
    ///   `POST /admin/reload`) re-reads it. Without one there is nothing to reload.
    static func make(
        configuration given: GatewayConfiguration, configPath: String? = nil, clock: any GatewayClock = SystemClock(), logger: Logger
    ) async throws -> Bootstrap {
        let store = try await openStore(given.store, logger: logger)
        let hub = SessionHub(
            maxSessionsPerUser: given.limits.maxSessionsPerUser, maxConnectionsPerIP: given.limits.maxConnectionsPerIP)
        let joined: (GatewayConfiguration, Stores, NodeLease?, PostgresClusterBus?)
        do {
            joined = try await joinCluster(store: store, configuration: given, hub: hub, clock: clock, logger: logger)
        } catch {
            try? await store.close()
            throw error
        }
        let (configuration, joinedStores, lease, bus) = joined
        let cluster: any ClusterBus = bus ?? NoClusterBus()
        let pipeline: Pipeline
        let stores: Stores
        do {
            // Media metadata lives in the gateway's store (SQLite or PostgreSQL).
            var withMedia = joinedStores
            if let metadata = store as? any MediaMetadataStore {
                withMedia.media = try MediaWiring.make(configuration.media, metadata: metadata, groups: store, clock: clock, logger: logger)
            }
            stores = withMedia
            pipeline = try Pipeline.build(
                configuration.pipeline, registry: try BuiltInStages.registry(), logger: logger, clock: clock, stores: stores, presence: ClusterPresenceQuery(hub: hub, bus: cluster),
                node: configuration.node, exposure: ListenerExposure(host: configuration.listen.public.host))
        } catch {
            try? await lease?.release()
            try? await store.close()
            throw error
        }
        let faults = StoreFaults()
        let gateway = Gateway(
            configuration: configuration, stores: stores, hub: hub, pipeline: pipeline, clock: clock, logger: logger, faults: faults, cluster: cluster)
        // A reload takes only the new `pipeline:`; the node, store and listeners keep what they started with.
        let reload: PipelineSource? = configPath.map { path in
            { @Sendable in
                let fresh = try ConfigLoader.load(path: path, stageKinds: Set(BuiltInStages.factories.map(\.kind)))
                return try Pipeline.build(
                    fresh.pipeline, registry: try BuiltInStages.registry(), logger: logger, clock: clock, stores: stores, presence: ClusterPresenceQuery(hub: hub, bus: cluster),
                    node: configuration.node, exposure: ListenerExposure(host: configuration.listen.public.host))
            }
        }
        // The application runs the pipeline's services itself, so a reload can replace them.
        let application = GatewayApplication(
            configuration: configuration, gateway: gateway, logger: logger, reloadPipeline: reload,
            demoTokens: try DemoTokens.minter(configuration: configuration, clock: clock, logger: logger))
        bus?.attach(gateway) { await application.listeningPorts().public }
        return Bootstrap(configuration: configuration, application: application, store: store, faults: faults, lease: lease, bus: bus)
    }

    /// On PostgreSQL, registers the node and leases its worker id (`node.worker_id`, or the
    /// lowest free one for `auto`), and guards sends by the lease; on SQLite, nothing changes.
    static func joinCluster(
        store: any MessageStore & GroupStore & ReceiptStore, configuration: GatewayConfiguration, hub: SessionHub, clock: any GatewayClock,
        logger: Logger
    ) async throws -> (GatewayConfiguration, Stores, NodeLease?, PostgresClusterBus?) {
        guard let postgres = store as? PostgresStore else { return (configuration, Stores(store), nil, nil) }
        var configuration = configuration
        let lease = try await ClusterMembership.join(postgres, configuration: configuration, hub: hub, clock: clock, logger: logger)
        configuration.node.workerID = lease.workerID ?? configuration.node.workerID
        let stores = Stores(
            messages: LeaseGuardedMessageStore(store: store, lease: lease), groups: store, receipts: store, devices: postgres, pushQueue: postgres)
        let bus = PostgresClusterBus(
            store: postgres, lease: lease, clock: clock, logger: logger, publicURL: configuration.node.publicURL, tls: configuration.tls != nil,
            maxQueued: configuration.cluster.busQueue)
        return (configuration, stores, lease, bus)
    }

    /// - Parameter reloadSignal: a signal that reloads the pipeline (`serve` uses SIGHUP).
    func serviceGroup(logger: Logger, signals: [UnixSignal] = [.sigterm, .sigint], reloadSignal: UnixSignal? = nil) throws -> ServiceGroup {
        var services = try application.services()
        if let lease {
            // First in the list, so it stops last: it keeps renewing while the others drain.
            services.insert(.init(service: lease), at: 0)
        }
        if let bus {
            // Right after the store closer: it stops after the sessions closed, before the store does.
            services.insert(.init(service: bus, successTerminationBehavior: .ignore), at: min(2, services.count))
        }
        if let reloadSignal {
            services.append(.init(service: HangupReloader(signal: reloadSignal, application: application, logger: logger), successTerminationBehavior: .ignore))
        }
        return ServiceGroup(configuration: .init(services: services, gracefulShutdownSignals: signals, logger: logger))
    }
}

/// The store `store.kind` names: the embedded SQLite file, or PostgreSQL (connected, its
/// schema brought up to date; `unavailable` when it cannot be reached).
func openStore(_ settings: StoreSettings, logger: Logger) async throws -> any MessageStore & GroupStore & ReceiptStore {
    switch settings.kind {
    case .sqlite:
        return try EmbeddedStore(path: settings.path, durability: settings.durability, logger: logger)
    case .postgres:
        guard let url = settings.url?.value else { throw BootstrapError("store.url is required when store.kind is postgres") }
        var configuration = try PostgresStoreConfiguration(url: url, poolSize: settings.poolSize, durability: settings.durability)
        configuration.requestTimeout = .milliseconds(settings.timeoutMs)
        configuration.connectTimeout = .milliseconds(settings.timeoutMs)
        return try await PostgresStore.open(configuration, logger: logger)
    }
}

struct BootstrapError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
