import GatewayCore
import Logging
import Synchronization

/// Builds the pipeline a reload puts in force, typically by re-reading the config file the
/// process started with; throws the error to report (a `ConfigError` names the file and line).
public typealias PipelineSource = @Sendable () async throws -> Pipeline

/// Puts a freshly built pipeline in force without dropping a connection.
///
/// Order matters: the new stages' services start first, then the gateway swaps the pipeline
/// (frames already in a stage finish on the old one, new frames take the new one), then the old
/// stages' services shut down gracefully. A build that fails changes nothing.
final class PipelineReloader: Sendable {
    private struct State {
        var running = false
        var counts = ReloadCounts()
    }

    private let gateway: Gateway
    private let source: PipelineSource?
    private let services: StageServiceHost
    private let logger: Logger
    /// Guards the in-progress flag (reloads are serialized) and the outcome counts.
    private let state = Mutex(State())

    init(gateway: Gateway, source: PipelineSource?, services: StageServiceHost, logger: Logger) {
        self.gateway = gateway
        self.source = source
        self.services = services
        self.logger = logger
    }

    var counts: ReloadCounts { state.withLock { $0.counts } }

    /// Rebuilds the pipeline from the source and puts it in force; returns it.
    func reload() async throws(ReloadError) -> Pipeline {
        guard let source else { throw .notConfigured }
        let claimed = state.withLock { state -> Bool in
            guard !state.running else { return false }
            state.running = true
            return true
        }
        guard claimed else { throw .inProgress }
        defer { state.withLock { $0.running = false } }

        let pipeline: Pipeline
        do {
            pipeline = try await source()
        } catch {
            state.withLock { $0.counts.failed += 1 }
            let text = String(describing: error)
            logger.warning("pipeline reload failed; the previous pipeline stays in force", metadata: ["error": "\(text)"])
            throw .invalid(text)
        }
        let previous = services.replace(with: pipeline.services)
        gateway.replacePipeline(pipeline)
        if let previous { await services.retire(previous) }
        state.withLock { $0.counts.succeeded += 1 }
        logger.info("pipeline reloaded", metadata: ["gateway.stages": "\(pipeline.entries.map(\.name).joined(separator: ","))"])
        return pipeline
    }
}

/// How many pipeline reloads succeeded and failed since the node started.
struct ReloadCounts: Sendable, Hashable {
    var succeeded = 0
    var failed = 0
}
