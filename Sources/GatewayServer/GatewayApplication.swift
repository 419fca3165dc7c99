import GatewayCore
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import ServiceLifecycle
import Synchronization

/// The gateway's listeners and lifecycle: the public port (WebSocket, long-poll, REST), the
/// admin port, and the orderly shutdown (refuse new work, close sessions with 1001, finish
/// queued commits, close the store).
///
/// Run `services` in a `ServiceGroup`; they shut down in reverse order, so sessions are closed
/// first and the store last.
public final class GatewayApplication: Sendable {
    public let gateway: Gateway
    public let readiness = Readiness()
    let longPoll: LongPollRegistry
    /// Closes WebSocket sessions silent for `presence.offline_after_ms`.
    let heartbeats: HeartbeatSweeper
    /// Token expiry of WebSocket sessions.
    let tokenDeadlines: TokenDeadlines
    /// WebSocket connections that are not sessions (waiting for `auth`, echo): closed at shutdown.
    let sessionless = SessionlessWebSockets()
    /// Places on the public port: sockets and long-poll sessions.
    let admission: ConnectionAdmission
    /// Client addresses behind trusted proxies.
    let addresses: ClientAddressResolver
    /// Guards the bound ports, known once the listeners run.
    private let ports = Mutex<(public: Int?, admin: Int?, waiters: [CheckedContinuation<(Int, Int), Never>])>((nil, nil, []))
    private let configuration: GatewayConfiguration
    private let logger: Logger
    private let extraServices: [any Service]
    /// The services of the pipeline in force, replaced on reload.
    private let stageServices: StageServiceHost
    let reloader: PipelineReloader
    let metrics = MetricsExporter()
    /// Signs demo tokens (`POST /demo/token`) when `demo.enabled`.
    private let demoTokens: DemoTokenMinter?

    /// - Parameters:
    ///   - services: more services to run that do not belong to the pipeline. The pipeline's own
    ///     (`gateway.pipeline.services`) are run by the application, and replaced on reload.
    ///   - reloadPipeline: builds the pipeline `POST /admin/reload` and `reloadPipeline()` put in
    ///     force (the executable re-reads its config file); nil when there is nothing to reload.
    public init(
        configuration: GatewayConfiguration, gateway: Gateway, logger: Logger, services: [any Service] = [],
        reloadPipeline: PipelineSource? = nil, demoTokens: DemoTokenMinter? = nil
    ) {
        self.demoTokens = demoTokens
        self.configuration = configuration
        self.gateway = gateway
        self.logger = logger
        self.admission = ConnectionAdmission(
            maxTotal: configuration.limits.maxConnections, maxPerAddress: configuration.limits.maxConnectionsPerIP)
        self.addresses = ClientAddressResolver(trustedProxies: configuration.listen.public.trustedProxies)
        self.longPoll = LongPollRegistry(
            gateway: gateway, settings: configuration.longpoll, admission: admission, relayMaxBytes: configuration.cluster.relayMaxBytes)
        self.heartbeats = HeartbeatSweeper(gateway: gateway, timeoutMs: configuration.presence.offlineAfterMs)
        self.tokenDeadlines = TokenDeadlines(eventLoop: MultiThreadedEventLoopGroup.singleton.next(), clock: gateway.clock)
        self.extraServices = services
        self.stageServices = StageServiceHost(services: gateway.pipeline.services, logger: logger)
        self.reloader = PipelineReloader(gateway: gateway, source: reloadPipeline, services: stageServices, logger: logger)
    }

    /// What the node holds for connections, by kind: places on the public port, addresses
    /// tracked for per-address caps, sessions, long-poll sessions, token deadlines, and the
    /// per-connection objects alive (`GatewayStats.LiveObjects`). With no client connected,
    /// every figure is 0: anything else is a leak. `/admin/stats` shows it as `lifecycle`.
    public var lifecycleCounts: [String: Int] {
        var counts = gateway.stats.live.snapshot
        counts["admitted"] = admission.total
        counts["admitted_addresses"] = admission.trackedAddresses
        counts["session_addresses"] = gateway.hub.trackedAddressCount
        counts["hub_sessions"] = gateway.hub.connectionCount
        counts["longpoll_sessions"] = longPoll.count
        counts["token_deadlines"] = tokenDeadlines.count
        counts["sessionless_websockets"] = sessionless.count
        return counts
    }

    /// Rebuilds the pipeline (re-reading the config file) and puts it in force for new frames,
    /// without dropping a connection; on error the pipeline in force stays. SIGHUP and
    /// `POST /admin/reload` both end here; concurrent reloads are refused (`inProgress`).
    @discardableResult
    public func reloadPipeline() async throws(ReloadError) -> Pipeline {
        try await reloader.reload()
    }

    /// The bound (public, admin) ports, once both listen.
    public func listeningPorts() async -> (public: Int, admin: Int) {
        await withCheckedContinuation { (continuation: CheckedContinuation<(Int, Int), Never>) in
            let ready: (Int, Int)? = ports.withLock { state in
                if let p = state.public, let a = state.admin { return (p, a) }
                state.waiters.append(continuation)
                return nil
            }
            if let ready { continuation.resume(returning: ready) }
        }
    }

    private func bound(public port: Int?, admin: Int?) {
        let (waiters, result): ([CheckedContinuation<(Int, Int), Never>], (Int, Int)?) = ports.withLock { state in
            if let port { state.public = port }
            if let admin { state.admin = admin }
            guard let p = state.public, let a = state.admin else { return ([], nil) }
            defer { state.waiters = [] }
            return (state.waiters, (p, a))
        }
        if let result {
            readiness.markListening()
            for waiter in waiters { waiter.resume(returning: result) }
        }
    }

    /// Everything to run, in start order.
    public func services() throws -> [ServiceGroupConfiguration.ServiceConfiguration] {
        let handshake = WebSocketHandshake(
            gateway: gateway, allowedOrigins: Set(configuration.listen.public.allowedOrigins), echoEnabled: configuration.debug.echoEndpoint)
        if configuration.listen.public.allowedOrigins.isEmpty {
            logger.warning("listen.public.allowed_origins is empty: WebSocket upgrades from every browser origin are accepted")
        }
        let tls = try configuration.tls.map { try Self.tlsConfiguration($0) }
        let scheme = tls == nil ? ("ws", "http") : ("wss", "https")
        let publicSettings = configuration.listen.public
        let publicRoutes = PublicRoutes(
            gateway: gateway, longPoll: longPoll, handshake: handshake,
            publicURL: { [self] in
                let port = self.ports.withLock { $0.public } ?? publicSettings.port
                let host = publicSettings.host == "0.0.0.0" ? "127.0.0.1" : publicSettings.host
                return ("\(scheme.0)://\(host):\(port)/v1/ws", "\(scheme.1)://\(host):\(port)/v1/lp")
            })
        let router = Router(context: GatewayRequestContext.self)
        router.add(middleware: ErrorMiddleware())
        router.add(middleware: ForwardedForMiddleware(resolver: addresses))
        router.add(middleware: CORSAllowListMiddleware(allowed: Set(configuration.listen.public.allowedOrigins)))
        publicRoutes.register(on: router)
        DeviceRoutes(gateway: gateway).register(on: router)
        ClientRoutes(demo: configuration.demo, mintToken: demoTokens).register(on: router)

        let gateway = self.gateway
        let websockets = WebSocketEnvironment(
            gateway: gateway, outboxes: LoopOutboxes(group: MultiThreadedEventLoopGroup.singleton), deadlines: tokenDeadlines,
            sessionless: sessionless, logger: logger)
        let admission = self.admission
        let addresses = self.addresses
        let sessionLogger = logger
        var server = HTTPServerBuilder { responder in
            GatewayChildChannel(
                responder: responder, gateway: gateway, handshake: handshake, websockets: websockets, admission: admission,
                addresses: addresses,
                logger: sessionLogger)
        }
        if let tls { server = try .tls(server, tlsConfiguration: tls) }
        let publicApp = Application(
            router: router, server: server,
            configuration: .init(address: .hostname(publicSettings.host, port: publicSettings.port), serverName: nil, backlog: 4096, reuseAddress: true),
            onServerRunning: { [self] channel in self.bound(public: channel.localAddress?.port, admin: nil) },
            logger: logger)

        let adminRouter = Router(context: GatewayRequestContext.self)
        adminRouter.add(middleware: ErrorMiddleware())
        AdminRoutes(
            gateway: gateway, longPoll: longPoll, readiness: readiness, token: configuration.listen.admin.token, reloader: reloader,
            metrics: metrics, lifecycle: { [self] in self.lifecycleCounts }
        ).register(on: adminRouter)
        DrainRoute(application: self, token: configuration.listen.admin.token).register(on: adminRouter)
        let adminSettings = configuration.listen.admin
        let adminApp = Application(
            router: adminRouter,
            configuration: .init(address: .hostname(adminSettings.host, port: adminSettings.port), serverName: nil),
            onServerRunning: { [self] channel in self.bound(public: nil, admin: channel.localAddress?.port) },
            logger: logger)

        var list: [ServiceGroupConfiguration.ServiceConfiguration] = [
            .init(service: StoreCloser(gateway: gateway, logger: logger), successTerminationBehavior: .ignore)
        ]
        list += extraServices.map { .init(service: $0) }
        list.append(.init(service: stageServices))
        list.append(.init(service: publicApp))
        list.append(.init(service: adminApp))
        list.append(.init(service: SessionDrainer(application: self), successTerminationBehavior: .ignore))
        return list
    }

    static func tlsConfiguration(_ settings: TLSSettings) throws -> TLSConfiguration {
        let chain = try NIOSSLCertificate.fromPEMFile(settings.cert).map { NIOSSLCertificateSource.certificate($0) }
        let key = try NIOSSLPrivateKey(file: settings.key, format: .pem)
        return TLSConfiguration.makeServerConfiguration(certificateChain: chain, privateKey: .privateKey(key))
    }

    /// Closes every live session with 1001 (clients reconnect elsewhere and sync).
    func closeAllSessions() {
        readiness.markDraining()
        // In a cluster, `/v1/discover` stops naming this node (not waited for: PostgreSQL may be down).
        Task { [gateway] in await gateway.cluster.markDraining() }
        longPoll.stop()
        heartbeats.stop()
        tokenDeadlines.stop()
        for session in gateway.hub.allSessions() {
            session.connection.close(code: .goingAway, reason: "server shutting down")
        }
        sessionless.closeAll(code: .goingAway, reason: "server shutting down")
    }

    func startBackgroundWork(on eventLoop: any EventLoop) {
        longPoll.start(on: eventLoop)
        heartbeats.start(on: eventLoop)
    }
}

/// Starts the long-poll and heartbeat sweepers; at shutdown, runs first: closes sessions with 1001.
struct SessionDrainer: Service {
    let application: GatewayApplication

    func run() async throws {
        application.startBackgroundWork(on: MultiThreadedEventLoopGroup.singleton.next())
        try? await gracefulShutdown()
        application.closeAllSessions()
    }
}

/// At shutdown, runs last: waits for queued commits, then closes the store.
struct StoreCloser: Service {
    let gateway: Gateway
    let logger: Logger

    func run() async throws {
        try? await gracefulShutdown()
        await gateway.drain()
        do {
            try await gateway.stores.messages.close()
        } catch {
            logger.error("closing the store failed", metadata: ["error": "\(error)"])
        }
    }
}
