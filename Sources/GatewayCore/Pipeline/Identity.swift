/// The user a token speaks for.
public struct Identity: Sendable, Hashable {
    public var user: String
    /// When the token expires, in milliseconds since the Unix epoch.
    public var expiresAt: Int64?

    public init(user: String, expiresAt: Int64?) {
        self.user = user
        self.expiresAt = expiresAt
    }
}
