import GatewayCore

/// A stage's `settings:` block, kept undecoded until the stage's factory names its type.
///
/// Holds the block's nodes (a `Sendable` value tree), its path in the document, the file name
/// and the environment for `${VAR}`, so that decoding later reports problems exactly as the
/// loader would have.
struct YAMLSettingsSource: SettingsSource {
    let node: ConfigNode
    let path: [PathKey]
    let file: String
    let environment: [String: String]

    /// Decodes the block as `type` and checks it for unknown keys; throws `ConfigError`.
    func decode<T: Decodable>(_ type: T.Type) throws -> T {
        try DecodingRun.decode(type, from: node, at: path, file: file, environment: environment)
    }
}
