import Logging

/// Where a stage's settings come from: the YAML block under `settings:`, decoded with the
/// YAML path and line kept for error messages (the config module provides it).
public protocol SettingsSource: Sendable {
    /// Decodes the block (an empty one when the stage has no `settings:`). Unknown keys and
    /// invalid values throw an error that names the file, the YAML path and the line.
    func decode<T: Decodable>(_ type: T.Type) throws -> T
}

/// Everything a factory may use to build a stage.
public struct StageBuildContext: Sendable {
    public let name: String
    public let kind: String
    public let settings: any SettingsSource
    /// The frame kinds the pipeline entry hands this stage (its `on:`, default `[send]`).
    public let on: Set<FrameKind>
    public let logger: Logger
    public let clock: any GatewayClock
    public let stores: Stores
    /// Node-wide settings some stages need (the node's worker id for `id`).
    public let node: NodeSettings
    /// Whether the public listener can be reached from other machines: stages refuse
    /// published development secrets when it can (`Secret.isPublishedDefault`).
    public let exposure: ListenerExposure
    /// The entry's own `timeout_ms` and `on_error`, when it sets them (nil: not set). The
    /// runner applies them; a stage reads them only to size its own I/O (an HTTP timeout).
    public let timeoutMs: Int?
    public let onError: StagePolicy.OnError?

    public init(
        name: String, kind: String, settings: any SettingsSource, on: Set<FrameKind> = [.send], logger: Logger, clock: any GatewayClock,
        stores: Stores, node: NodeSettings, exposure: ListenerExposure = .loopback, timeoutMs: Int? = nil, onError: StagePolicy.OnError? = nil
    ) {
        self.timeoutMs = timeoutMs
        self.onError = onError
        self.name = name
        self.kind = kind
        self.settings = settings
        self.on = on
        self.logger = logger
        self.clock = clock
        self.stores = stores
        self.node = node
        self.exposure = exposure
    }
}

/// Who can reach a listener: this machine only, or the network.
public enum ListenerExposure: Sendable, Hashable {
    case loopback
    case network

    /// The exposure of a listener bound to `host` (`127.0.0.1`, `::1` and `localhost` are
    /// loopback; everything else, `0.0.0.0` included, is the network).
    public init(host: String) {
        let loopback = host == "localhost" || host == "::1" || host.hasPrefix("127.")
        self = loopback ? .loopback : .network
    }
}

/// A stage, built, with the effective settings to show on `/admin/pipeline` and what it
/// provides to the core.
public struct BuiltStage: Sendable {
    public let stage: any Stage
    /// The effective settings as JSON, secrets shown as `<redacted>`.
    public let settings: JSONValue
    /// The stage as the `.authenticator` role, when it provides it.
    public var authenticator: (any Authenticator)?
    /// The stage as the `.messageIDs` role, when it provides it.
    public var messageIDs: (any MessageIDSource)?
    /// The kind's defaults for `timeout_ms` and `on_error`; the entry's keys override them.
    public var policy: StagePolicy
    /// A narrower set of frame kinds than the entry's `on:` (from a deprecated settings key);
    /// the stage sees only frames of both.
    public var onlyOn: Set<FrameKind>?

    public init(
        stage: any Stage, settings: JSONValue, authenticator: (any Authenticator)? = nil, messageIDs: (any MessageIDSource)? = nil,
        policy: StagePolicy = .default, onlyOn: Set<FrameKind>? = nil
    ) {
        self.stage = stage
        self.settings = settings
        self.authenticator = authenticator
        self.messageIDs = messageIDs
        self.policy = policy
        self.onlyOn = onlyOn
    }
}

/// Builds stages of one kind from their settings, and says what they provide and need.
///
/// The roles a stage plays for the core come from its type: a stage that is an
/// `Authenticator` provides `.authenticator`, a `MessageIDSource` provides `.messageIDs`.
/// Other roles (`.recipients`, `.durability`, or your own) are listed in `provides:`.
/// `after:` names roles an earlier entry must provide, `requires:` roles some entry must.
public struct StageFactory: Sendable {
    public let kind: String
    /// The roles this kind's stages provide.
    public let provides: Set<StageRole>
    /// Where this kind's stages must stand.
    public let ordering: StageOrdering
    private let build: @Sendable (StageBuildContext) throws -> BuiltStage

    /// A factory whose settings are the `Codable` type `Settings`.
    ///
    /// ```swift
    /// StageFactory(kind: "acme.shout", settings: ShoutSettings.self) { settings, context in
    ///     ShoutStage(settings: settings)
    /// }
    /// ```
    public init<Settings: Codable & Sendable, S: Stage>(
        kind: String, settings: Settings.Type, provides: Set<StageRole> = [], after: [StageRole] = [], requires: [StageRole] = [],
        build: @escaping @Sendable (Settings, StageBuildContext) throws -> S
    ) {
        self.init(kind: kind, provides: provides, ordering: StageOrdering(after: after, requires: requires)) { context in
            let settings = try context.settings.decode(Settings.self)
            return BuiltStage(stage: try build(settings, context), settings: SettingsRenderer.render(settings))
        }
    }

    /// A factory of a stage that verifies tokens: it provides `.authenticator`.
    public init<Settings: Codable & Sendable, S: Stage & Authenticator>(
        kind: String, settings: Settings.Type, provides: Set<StageRole> = [], after: [StageRole] = [], requires: [StageRole] = [],
        build: @escaping @Sendable (Settings, StageBuildContext) throws -> S
    ) {
        self.init(kind: kind, provides: provides.union([.authenticator]), ordering: StageOrdering(after: after, requires: requires)) { context in
            let settings = try context.settings.decode(Settings.self)
            let stage = try build(settings, context)
            return BuiltStage(stage: stage, settings: SettingsRenderer.render(settings), authenticator: stage)
        }
    }

    /// A factory of a stage that stamps message ids: it provides `.messageIDs`.
    public init<Settings: Codable & Sendable, S: Stage & MessageIDSource>(
        kind: String, settings: Settings.Type, provides: Set<StageRole> = [], after: [StageRole] = [], requires: [StageRole] = [],
        build: @escaping @Sendable (Settings, StageBuildContext) throws -> S
    ) {
        self.init(kind: kind, provides: provides.union([.messageIDs]), ordering: StageOrdering(after: after, requires: requires)) { context in
            let settings = try context.settings.decode(Settings.self)
            let stage = try build(settings, context)
            return BuiltStage(stage: stage, settings: SettingsRenderer.render(settings), messageIDs: stage)
        }
    }

    /// The general form: `make` decodes the settings itself and returns the built stage with
    /// the roles it declares filled in (`BuiltStage.authenticator`, `.messageIDs`) and, if its
    /// kind has them, defaults for `timeout_ms` and `on_error`.
    public init(
        kind: String, provides: Set<StageRole> = [], ordering: StageOrdering = .none,
        make: @escaping @Sendable (StageBuildContext) throws -> BuiltStage
    ) {
        self.kind = kind
        self.provides = provides
        self.ordering = ordering
        self.build = make
    }

    public func make(_ context: StageBuildContext) throws -> BuiltStage {
        try build(context)
    }
}

/// No settings: for stages that take none (`id` on a node with defaults, say).
public struct NoSettings: Codable, Sendable {
    public init() {}
}

/// Maps kind names to factories. Built in the executable, in one place.
public struct StageRegistry: Sendable {
    /// A second registration of a kind.
    public struct DuplicateKindError: Error, CustomStringConvertible {
        public let kind: String
        public var description: String { "stage kind '\(kind)' is registered twice" }
    }

    /// A kind that is neither built in (short, no dot) nor owner-prefixed (`acme.profanity`).
    public struct InvalidKindError: Error, CustomStringConvertible {
        public let kind: String
        public var description: String {
            "stage kind '\(kind)' is not valid: use lowercase letters, digits and '_', with a dotted owner prefix for custom stages (acme.profanity)"
        }
    }

    private var factories: [String: StageFactory] = [:]

    public init() {}

    public init(_ factories: [StageFactory]) throws {
        for factory in factories { try register(factory) }
    }

    public mutating func register(_ factory: StageFactory) throws {
        guard Self.isValidKind(factory.kind) else { throw InvalidKindError(kind: factory.kind) }
        guard factories[factory.kind] == nil else { throw DuplicateKindError(kind: factory.kind) }
        factories[factory.kind] = factory
    }

    public func factory(for kind: String) -> StageFactory? { factories[kind] }

    public var kinds: [String] { factories.keys.sorted() }

    /// The kinds whose stages provide `role`, sorted (for messages that suggest one).
    public func kinds(providing role: StageRole) -> [String] {
        factories.values.filter { $0.provides.contains(role) }.map(\.kind).sorted()
    }

    static func isValidKind(_ kind: String) -> Bool {
        let parts = kind.split(separator: ".", omittingEmptySubsequences: false)
        guard !parts.isEmpty, parts.count <= 4 else { return false }
        return parts.allSatisfy { part in
            !part.isEmpty && part.utf8.allSatisfy { ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x5F || $0 == 0x2D }
        }
    }
}

/// Secrets in settings: shown as `<redacted>` in logs, errors and `/admin/pipeline`.
public struct Secret: Codable, Sendable, Hashable, CustomStringConvertible, CustomDebugStringConvertible {
    public let value: String

    public init(_ value: String) { self.value = value }

    public init(from decoder: any Decoder) throws {
        value = try decoder.singleValueContainer().decode(String.self)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(Self.redacted)
    }

    /// Whether this is one of the placeholder secrets this project publishes (in `config.yaml`,
    /// the README and the design): anyone can mint tokens with them, so a gateway reachable
    /// from the network refuses them.
    public var isPublishedDefault: Bool { Self.publishedDefaults.contains(value) }

    /// The placeholder values of `config.yaml` and the docs.
    public static let publishedDefaults: Set<String> = [
        "dev-only-secret-change-me-0123456789", "change-me", "change-me-0123456789-0123456789-0123", "dev-only-push-secret-change-me",
    ]

    public var description: String { Self.redacted }
    public var debugDescription: String { Self.redacted }
    public static let redacted = "<redacted>"
}
