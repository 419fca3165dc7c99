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
