import Logging
import ServiceLifecycle

/// The stages in force, built from the `pipeline:` list, and the runner that takes an
/// envelope through them.
///
/// The runner, not the stages, counts outcomes and measures each stage's latency (lock-free),
/// and stops at the first `reject` or `reply`. A pipeline is immutable: a reload builds a new
/// one and swaps it in for new frames while frames in flight finish on the old one.
public final class Pipeline: Sendable {
    /// One stage in the list. A class: the runner walks entries per frame, and a reference
    /// costs one retain where copying the struct retained every field.
    public final class Entry: Sendable {
        public let name: String
        public let kind: String
        public let on: Set<FrameKind>
        public let stage: any Stage
        /// Effective settings, secrets redacted (for `/admin/pipeline`).
        public let settings: JSONValue
        public let stats: StageStats
        let context: StageContext

        init(name: String, kind: String, on: Set<FrameKind>, stage: any Stage, settings: JSONValue, stats: StageStats, context: StageContext) {
            self.name = name
            self.kind = kind
            self.on = on
            self.stage = stage
            self.settings = settings
            self.stats = stats
            self.context = context
        }
    }

    /// A problem building the pipeline, located by the entry's index and name.
    public struct BuildError: Error, CustomStringConvertible {
        public let index: Int
        public let message: String
        public var description: String { "pipeline[\(index)]: \(message)" }
    }

    public let entries: [Entry]
    /// The stage that verifies tokens (the first `Authenticator` in the list), if any.
    public let authenticator: (any Authenticator)?
    /// The stage that stamps ids (the first `MessageIDSource`), if any.
    public let idSource: (any MessageIDSource)?
    /// Entries per frame kind, in pipeline order, so a frame walks only its own stages.
    private let byKind: [FrameKind: [Entry]]
    /// Services the stages need running (pools, queues), for the executable's ServiceGroup.
    public let services: [any Service]

    public init(entries: [Entry]) {
        self.entries = entries
        authenticator = entries.lazy.compactMap { $0.stage as? any Authenticator }.first
        idSource = entries.lazy.compactMap { $0.stage as? any MessageIDSource }.first
        var byKind: [FrameKind: [Entry]] = [:]
        for kind in FrameKind.allCases {
            byKind[kind] = entries.filter { $0.on.contains(kind) }
        }
        self.byKind = byKind
        services = entries.flatMap { $0.stage.services }
    }

    /// Builds every stage of `config` with the registry's factories.
    ///
    /// Settings errors come back as the config module renders them (file, YAML path, line);
    /// other problems name the entry's index.
    public static func build(
        _ config: [PipelineEntry], registry: StageRegistry, logger: Logger, clock: any GatewayClock, stores: Stores,
        presence: any PresenceQuery, node: NodeSettings, exposure: ListenerExposure = .loopback
    ) throws -> Pipeline {
        var entries: [Entry] = []
        var names: Set<String> = []
        for (index, item) in config.enumerated() {
            guard let factory = registry.factory(for: item.stage) else {
                throw BuildError(index: index, message: "unknown stage kind '\(item.stage)' (known: \(registry.kinds.joined(separator: ", ")))")
            }
            guard names.insert(item.name).inserted else {
                throw BuildError(index: index, message: "a stage named '\(item.name)' already appears; give one a different 'name'")
            }
            var stageLogger = logger
            stageLogger[metadataKey: "gateway.stage"] = .string(item.name)
            let buildContext = StageBuildContext(
                name: item.name, kind: item.stage, settings: item.settings, on: item.on, logger: stageLogger, clock: clock, stores: stores, node: node,
                exposure: exposure)
            let built: BuiltStage
            do {
                built = try factory.make(buildContext)
            } catch let error as BuildError {
                throw error
            } catch {
                if String(describing: type(of: error)) == "ConfigError" { throw error }
                throw BuildError(index: index, message: "stage '\(item.name)': \(error)")
            }
            let context = StageContext(name: item.name, logger: stageLogger, clock: clock, stores: stores, presence: presence)
            entries.append(
                Entry(name: item.name, kind: item.stage, on: item.on, stage: built.stage, settings: built.settings, stats: StageStats(), context: context))
        }
        try validateOrder(entries)
        return Pipeline(entries: entries)
    }

    /// `fanout` resolves the inboxes `persist` writes to, so a pipeline with `persist` needs a
    /// `fanout` too (after it, as in DESIGN.md), and both must come after `id`.
    static func validateOrder(_ entries: [Entry]) throws {
        let kinds = entries.map(\.kind)
        if let persist = kinds.firstIndex(of: "persist") {
            guard kinds.contains("fanout") else {
                throw BuildError(index: persist, message: "stage 'persist' needs a 'fanout' stage to resolve the inboxes it writes")
            }
            if let id = kinds.firstIndex(of: "id"), id > persist {
                throw BuildError(index: id, message: "stage 'id' must come before 'persist'")
            }
            if !kinds.contains("id") {
                throw BuildError(index: persist, message: "stage 'persist' needs an 'id' stage before it to stamp message ids")
            }
        }
        if !entries.contains(where: { $0.stage is any Authenticator }) {
            throw BuildError(index: 0, message: "the pipeline needs an 'auth' stage: it verifies the tokens clients connect with")
        }
    }

    /// Runs the stages that take `envelope.kind`, in order; stops at the first non-`continue`.
    public func run(_ envelope: inout Envelope) async -> StageOutcome {
        guard let stages = byKind[envelope.kind] else { return .continue }
        for entry in stages {
            let start = monotonicNanos()
            let outcome: StageOutcome
            do {
                outcome = try await entry.stage.process(&envelope, context: entry.context)
            } catch {
                entry.stats.latency.record(nanoseconds: monotonicNanos() &- start)
                entry.stats.processed.wrappingIncrement(ordering: .relaxed)
                entry.stats.errors.wrappingIncrement(ordering: .relaxed)
                let clientError = GatewayError.from(error)
                if clientError.code == .internal {
                    entry.context.logger.error("stage failed", metadata: ["error": "\(error)", "gateway.session": "\(envelope.sender.session)"])
                }
                return .reject(clientError)
            }
            entry.stats.latency.record(nanoseconds: monotonicNanos() &- start)
            entry.stats.processed.wrappingIncrement(ordering: .relaxed)
            switch outcome {
            case .continue:
                continue
            case .reject:
                entry.stats.rejected.wrappingIncrement(ordering: .relaxed)
                return outcome
            case .reply:
                return outcome
            }
        }
        return .continue
    }

    /// Runs every stage's `committed` hook for a stored message.
    public func committed(_ envelope: Envelope, outcome: CommitOutcome) async {
        guard let stages = byKind[envelope.kind] else { return }
        for entry in stages {
            await entry.stage.committed(envelope, outcome: outcome, context: entry.context)
        }
    }
}
