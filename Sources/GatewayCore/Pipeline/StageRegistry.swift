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

    public init(
        name: String, kind: String, settings: any SettingsSource, on: Set<FrameKind> = [.send], logger: Logger, clock: any GatewayClock,
        stores: Stores, node: NodeSettings, exposure: ListenerExposure = .loopback
    ) {
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

/// A stage, built, with the effective settings to show on `/admin/pipeline`.
public struct BuiltStage: Sendable {
    public let stage: any Stage
    /// The effective settings as JSON, secrets shown as `<redacted>`.
    public let settings: JSONValue

    public init(stage: any Stage, settings: JSONValue) {
        self.stage = stage
        self.settings = settings
    }
}

/// Builds stages of one kind from their settings.
public struct StageFactory: Sendable {
    public let kind: String
    private let build: @Sendable (StageBuildContext) throws -> BuiltStage

    /// A factory whose settings are the `Codable` type `Settings`.
    ///
    /// ```swift
    /// StageFactory(kind: "acme.shout", settings: ShoutSettings.self) { settings, context in
    ///     ShoutStage(settings: settings)
    /// }
    /// ```
    public init<Settings: Codable & Sendable>(
        kind: String, settings: Settings.Type,
        build: @escaping @Sendable (Settings, StageBuildContext) throws -> any Stage
    ) {
        self.kind = kind
        self.build = { context in
            let settings = try context.settings.decode(Settings.self)
            let stage = try build(settings, context)
            return BuiltStage(stage: stage, settings: SettingsRenderer.render(settings))
        }
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
