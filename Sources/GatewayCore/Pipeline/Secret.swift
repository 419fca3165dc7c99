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
