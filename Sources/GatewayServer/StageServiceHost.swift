import Logging
import ServiceLifecycle
import Synchronization

/// Runs the services of the pipeline in force (stage pools, queues), one generation per
/// pipeline, so a reload can start the new stages' services and retire the old ones' while the
/// node keeps running.
///
/// Each generation is a `ServiceGroup` of its own running as a child of this service: it inherits
/// the node's graceful shutdown, and a reload shuts a retired generation down gracefully on its
/// own. A service of the generation in force that fails takes the node down, as a service in the
/// node's group would; one of a retired generation only logs.
final class StageServiceHost: Service, Sendable {
    /// A pipeline's services, run as one group.
    final class Generation: Sendable {
        let group: ServiceGroup
        let names: [String]
        /// Set when a reload replaced this generation: its failures no longer stop the node.
        let retired = Atomic<Bool>(false)

        init(services: [any Service], logger: Logger) {
            group = ServiceGroup(configuration: .init(services: services, gracefulShutdownSignals: [], logger: logger))
            names = services.map { String(describing: type(of: $0)) }
        }
    }

    private let logger: Logger
    /// Generations to start; a reload adds one at a time (reloads are serialized), so the
    /// buffer never holds more than a couple.
    private let starts: AsyncStream<Generation>
    private let startsContinuation: AsyncStream<Generation>.Continuation
    /// Guards the generation in force.
    private let current = Mutex<Generation?>(nil)

    /// - Parameter services: the services of the pipeline the node starts with.
    init(services: [any Service], logger: Logger) {
        self.logger = logger
        (starts, startsContinuation) = AsyncStream.makeStream(of: Generation.self, bufferingPolicy: .bufferingOldest(8))
        _ = replace(with: services)
    }

    /// Starts `services` as the generation in force and returns the previous one, which the
    /// caller retires once the new pipeline is in force (frames on the old pipeline may still
    /// use its services until then).
    func replace(with services: [any Service]) -> Generation? {
        let generation = services.isEmpty ? nil : Generation(services: services, logger: logger)
        let previous = current.withLock { current -> Generation? in
            defer { current = generation }
            return current
        }
        guard let generation else { return previous }
        switch startsContinuation.yield(generation) {
        case .enqueued:
            break
        case .terminated:
            // The node is shutting down: nothing to start.
            current.withLock { if $0 === generation { $0 = nil } }
        case .dropped:
            logger.error("too many pipeline reloads before the node started; the services of the newest pipeline did not start")
        @unknown default:
            break
        }
        return previous
    }

    /// Shuts a generation's services down gracefully (they finish their queued work).
    func retire(_ generation: Generation) async {
        generation.retired.store(true, ordering: .relaxed)
        logger.debug("stopping the services of the replaced pipeline", metadata: ["gateway.services": "\(generation.names)"])
        await generation.group.triggerGracefulShutdown()
    }

    func run() async throws {
        try await withThrowingDiscardingTaskGroup { tasks in
            await withGracefulShutdownHandler {
                for await generation in starts {
                    tasks.addTask { try await self.run(generation) }
                }
            } onGracefulShutdown: {
                // Running generations shut down with the node (they inherit its graceful shutdown).
                self.startsContinuation.finish()
            }
        }
    }

    private func run(_ generation: Generation) async throws {
        do {
            try await generation.group.run()
        } catch {
            guard generation.retired.load(ordering: .relaxed) else { throw error }
            logger.error("a service of a replaced pipeline failed", metadata: ["error": "\(error)"])
        }
    }
}
