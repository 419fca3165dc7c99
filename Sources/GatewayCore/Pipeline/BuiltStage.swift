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

    /// A built stage whose effective settings are `settings` rendered as JSON (secrets
    /// redacted), for factories that decode their settings themselves.
    public init<Settings: Encodable>(
        stage: any Stage, rendering settings: Settings, authenticator: (any Authenticator)? = nil, messageIDs: (any MessageIDSource)? = nil,
        policy: StagePolicy = .default, onlyOn: Set<FrameKind>? = nil
    ) {
        self.init(
            stage: stage, settings: SettingsRenderer.render(settings), authenticator: authenticator, messageIDs: messageIDs, policy: policy,
            onlyOn: onlyOn)
    }
}
