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
        /// The effective `timeout_ms` and `on_error` the runner applies to this stage.
        public let policy: StagePolicy
        /// The roles this entry's stage provides.
        public let provides: Set<StageRole>
        let authenticator: (any Authenticator)?
        let messageIDs: (any MessageIDSource)?
        let context: StageContext

        init(
            name: String, kind: String, on: Set<FrameKind>, built: BuiltStage, provides: Set<StageRole>, policy: StagePolicy, stats: StageStats,
            context: StageContext
        ) {
            self.name = name
            self.kind = kind
            self.on = on
            self.stage = built.stage
            self.settings = built.settings
            self.authenticator = built.authenticator
            self.messageIDs = built.messageIDs
            self.provides = provides
            self.policy = policy
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
    /// The stage that verifies tokens (the first entry providing `.authenticator`), if any.
    public let authenticator: (any Authenticator)?
    /// The stage that stamps ids (the first entry providing `.messageIDs`), if any.
    public let idSource: (any MessageIDSource)?
    /// Entries per frame kind, in pipeline order, so a frame walks only its own stages.
    private let byKind: [FrameKind: [Entry]]
    /// Services the stages need running (pools, queues), for the executable's ServiceGroup.
    public let services: [any Service]

    public init(entries: [Entry]) {
        self.entries = entries
        authenticator = entries.lazy.compactMap(\.authenticator).first
        idSource = entries.lazy.compactMap(\.messageIDs).first
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
        var orderings: [StageOrdering] = []
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
                exposure: exposure, timeoutMs: item.timeoutMs, onError: item.onError)
            let built: BuiltStage
            do {
                built = try factory.make(buildContext)
            } catch let error as BuildError {
                throw error
            } catch let error as any LocatedConfigError {
                throw error
            } catch {
                throw BuildError(index: index, message: "stage '\(item.name)': \(error)")
            }
            if factory.provides.contains(.authenticator), built.authenticator == nil {
                throw BuildError(index: index, message: "stage '\(item.name)': kind '\(item.stage)' declares the authenticator role but built no Authenticator")
            }
            if factory.provides.contains(.messageIDs), built.messageIDs == nil {
                throw BuildError(index: index, message: "stage '\(item.name)': kind '\(item.stage)' declares the message_ids role but built no MessageIDSource")
            }
            let policy = StagePolicy(timeoutMs: item.timeoutMs ?? built.policy.timeoutMs, onError: item.onError ?? built.policy.onError)
            let context = StageContext(name: item.name, logger: stageLogger, clock: clock, stores: stores, presence: presence)
            let on = built.onlyOn.map { item.on.intersection($0) } ?? item.on
            entries.append(
                Entry(name: item.name, kind: item.stage, on: on, built: built, provides: factory.provides, policy: policy, stats: StageStats(), context: context))
            orderings.append(factory.ordering)
        }
        try validateOrder(entries, orderings: orderings, registry: registry)
        return Pipeline(entries: entries)
    }

    /// Checks what the factories declared: each entry's `after:` roles are provided by an
    /// earlier entry, its `requires:` roles by some entry; and the core's own needs: a stage
    /// that verifies tokens, and, when a stage asks for the durable write, stages that stamp
    /// ids and choose recipients (the commit needs both).
    static func validateOrder(_ entries: [Entry], orderings: [StageOrdering], registry: StageRegistry) throws {
        func providers(_ role: StageRole) -> String {
            let kinds = registry.kinds(providing: role)
            return kinds.isEmpty ? "" : " (\(kinds.map { "'\($0)'" }.joined(separator: " or ")))"
        }
        let all = entries.reduce(into: Set<StageRole>()) { $0.formUnion($1.provides) }
        var earlier: Set<StageRole> = []
        for (index, (entry, ordering)) in zip(entries, orderings).enumerated() {
            for role in ordering.after where !earlier.contains(role) {
                let message =
                    all.contains(role)
                    ? "stage '\(entry.name)' must come after the stage that provides \(role)\(providers(role))"
                    : "stage '\(entry.name)' needs a stage before it that provides \(role)\(providers(role))"
                throw BuildError(index: index, message: message)
            }
            for role in ordering.requires where !all.contains(role) {
                throw BuildError(index: index, message: "stage '\(entry.name)' needs a stage that provides \(role)\(providers(role))")
            }
            earlier.formUnion(entry.provides)
        }
        if !all.contains(.authenticator) {
            throw BuildError(
                index: 0, message: "the pipeline needs a stage that provides authenticator\(providers(.authenticator)): it verifies the tokens clients connect with")
        }
        if let durable = entries.firstIndex(where: { $0.provides.contains(.durability) }) {
            for role in [StageRole.messageIDs, .recipients] where !all.contains(role) {
                throw BuildError(index: durable, message: "stage '\(entries[durable].name)' asks for the durable write, which needs a stage that provides \(role)\(providers(role))")
            }
        }
    }

    /// Runs the stages that take `envelope.kind`, in order; stops at the first non-`continue`.
    ///
    /// Each stage runs under its entry's policy: with `timeout_ms`, `process` runs in a task of
    /// its own raced against the clock's deadline (the stage is cancelled when the deadline
    /// wins); a throw or a missed deadline applies `on_error`.
    public func run(_ envelope: inout Envelope) async -> StageOutcome {
        guard let stages = byKind[envelope.kind] else { return .continue }
        for entry in stages {
            let outcome = await entry.runStage(&envelope)
            if case .continue = outcome { continue }
            return outcome
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
