import GatewayConfig
import GatewayCore

/// Stage settings decoded by the config loader's own decoder, as a stage test writes them: YAML
/// text (JSON is YAML's flow style), with unknown keys rejected and every problem reported at its
/// dotted path, exactly as `chatgate check-config` would report it in a config file.
///
/// ```swift
/// #expect(StageSettings.problems(ShoutSettings.self, in: #"{"sufix": "!"}"#).map(\.message)
///     == ["unknown key 'sufix' (did you mean 'suffix'?)"])
/// ```
public enum StageSettings {
    /// The block as the pipeline hands it to a stage's factory (`StageBuildContext.settings`).
    /// Throws `ConfigError` for a YAML syntax error or a duplicate key.
    public static func source(_ text: String) throws(ConfigError) -> any SettingsSource {
        try ConfigLoader.settingsSource(text: text)
    }

    /// Decodes `type` from `text` as the loader would; throws `ConfigError`.
    public static func decode<T: Decodable>(_ type: T.Type, from text: String) throws -> T {
        try source(text).decode(type)
    }

    /// What the loader would report about `text` as `type`'s settings, each problem as its
    /// dotted path (`settings.retry.attempts`) and message, in file order; empty when valid.
    public static func problems<T: Decodable>(_ type: T.Type, in text: String) -> [Problem] {
        do {
            _ = try decode(type, from: text)
            return []
        } catch let error as ConfigError {
            return error.diagnostics.map { Problem(path: $0.path, message: $0.message) }
        } catch {
            return [Problem(path: "", message: "\(error)")]
        }
    }

    /// One problem of a settings block.
    public struct Problem: Sendable, Hashable, CustomStringConvertible {
        /// The dotted path, starting at `settings`.
        public var path: String
        public var message: String

        public init(path: String, message: String) {
            self.path = path
            self.message = message
        }

        public var description: String { "\(path): \(message)" }
    }
}
