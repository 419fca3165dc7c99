/// A problem with the `auth` stage's settings, found while decoding them or building the stage.
///
/// `key` is the YAML key the problem belongs to (`hs256_secret`, `jwks_file`), or nil when it
/// is about the settings block as a whole ("no key configured").
public struct AuthSettingsError: Error, Sendable, Hashable, CustomStringConvertible {
    public let key: String?
    public let reason: String

    public init(key: String?, reason: String) {
        self.key = key
        self.reason = reason
    }

    public var description: String { key.map { "\($0): \(reason)" } ?? reason }
}
