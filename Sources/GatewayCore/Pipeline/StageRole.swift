/// A job a stage does for the core or for other stages: verifying tokens, stamping ids,
/// choosing recipients, asking for the durable write.
///
/// Factories declare the roles their stages provide and the roles they need before them
/// (`after:`) or anywhere in the pipeline (`requires:`); `Pipeline.build` checks these
/// generically, so the core names roles, never stage kinds. Custom stages may define roles
/// of their own (`StageRole("acme.language")`) to order themselves after one another.
public struct StageRole: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: String

    public init(rawValue: String) { self.rawValue = rawValue }
    public init(_ rawValue: String) { self.rawValue = rawValue }

    /// Turns tokens into identities (`Authenticator`); every pipeline needs one.
    public static let authenticator = StageRole("authenticator")
    /// Stamps `envelope.id` and hands out ids above a floor (`MessageIDSource`); the commit
    /// queue uses it to keep ids increasing in commit order.
    public static let messageIDs = StageRole("message_ids")
    /// Fills `envelope.recipients` (and `liveOnlyRecipients`) for `send` frames.
    public static let recipients = StageRole("recipients")
    /// Sets `envelope.persist`: the core's group commit writes the message before the ack.
    public static let durability = StageRole("durability")

    public var description: String { rawValue }
}

/// Where a factory's stages must stand in the pipeline.
public struct StageOrdering: Sendable, Hashable {
    /// Roles that an entry earlier in the list must provide.
    public var after: [StageRole]
    /// Roles that some entry of the pipeline must provide (before or after).
    public var requires: [StageRole]

    public init(after: [StageRole] = [], requires: [StageRole] = []) {
        self.after = after
        self.requires = requires
    }

    public static let none = StageOrdering()
}

/// A problem of the configuration that already names its file, line and YAML path (the config
/// module's `ConfigError` is one): the pipeline passes it on unchanged instead of prefixing it
/// with the entry's index.
public protocol LocatedConfigError: Error, CustomStringConvertible {}
