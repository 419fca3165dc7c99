import Foundation
import GatewayCore

/// Loads `config.yaml` into a `GatewayConfiguration`, or fails with every problem it found.
///
/// The text is parsed once with Yams, keeping each node's line and column, and decoded with
/// the config module's own decoder, which
///
/// - replaces `${VAR}` and `${VAR:-default}` in scalars from `environment` (`$${` is a literal
///   `${`); a variable that is unset and has no default is an error at that scalar;
/// - reports every key the configuration types never asked about as unknown, with the nearest
///   known key when it looks like a typo;
/// - renders each problem like a compiler, with the file, position and YAML path:
///   `config.yaml:14:7: error: pipeline[2].settings.level: must be 1...19 (was 0)`.
///
/// Each pipeline entry's `settings:` block is left undecoded in `PipelineEntry.settings`; the
/// stage's factory decodes it into its own type later, with the same checks and error format.
///
/// ```swift
/// do {
///     let configuration = try ConfigLoader.load(path: "config.yaml")
/// } catch {
///     // error.description: one line per problem.
/// }
/// ```
public enum ConfigLoader {
    /// Reads and decodes the file at `path`; the diagnostics name the file as `path`.
    ///
    /// With `stageKinds`, a pipeline entry naming any other kind is an error at its line.
    public static func load(
        path: String, environment: [String: String] = ProcessInfo.processInfo.environment, stageKinds: Set<String>? = nil
    ) throws(ConfigError) -> GatewayConfiguration {
        guard FileManager.default.fileExists(atPath: path) else {
            throw ConfigError(ConfigDiagnostic(file: path, line: 0, column: 0, path: "", message: "no such file"))
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConfigError(ConfigDiagnostic(file: path, line: 0, column: 0, path: "", message: "cannot read the file"))
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw ConfigError(ConfigDiagnostic(file: path, line: 0, column: 0, path: "", message: "the file is not valid UTF-8"))
        }
        return try load(text: text, file: path, environment: environment, stageKinds: stageKinds)
    }

    /// Decodes YAML `text`; `file` is the name the diagnostics give it.
    public static func load(
        text: String, file: String, environment: [String: String] = ProcessInfo.processInfo.environment, stageKinds: Set<String>? = nil
    ) throws(ConfigError) -> GatewayConfiguration {
        let root = try YAMLDocument.parse(text, file: file)
        let userInfo: [CodingUserInfoKey: Any] = stageKinds.map { [.gatewayStageKinds: $0] } ?? [:]
        return try DecodingRun.decode(GatewayConfiguration.self, from: root, at: [], file: file, environment: environment, userInfo: userInfo)
    }
}
