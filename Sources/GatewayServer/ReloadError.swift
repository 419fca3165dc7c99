/// Why a reload left the pipeline as it was.
public struct ReloadError: Error, Sendable, CustomStringConvertible {
    private enum Code: Sendable {
        case notConfigured, inProgress, invalid
    }

    private let code: Code
    /// What went wrong; for an invalid config, its diagnostics (file, line, YAML path).
    public let description: String

    private init(_ code: Code, _ description: String) {
        self.code = code
        self.description = description
    }

    /// The node was started without a config file to re-read.
    public static let notConfigured = ReloadError(.notConfigured, "this node was not started from a config file; nothing to reload")
    /// Another reload is running; the caller may try again once it ends.
    public static let inProgress = ReloadError(.inProgress, "a reload is already in progress")
    /// The new config or pipeline is invalid; the old pipeline stays in force.
    public static func invalid(_ description: String) -> ReloadError { ReloadError(.invalid, description) }

    /// Whether the config was at fault (answered `400`), rather than the node's state (`409`).
    public var isInvalidConfig: Bool { code == .invalid }
}
