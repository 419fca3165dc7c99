import Foundation
import GatewayCore

extension ConfigLoader {
    /// A stage's `settings:` block given on its own, as YAML text (JSON is YAML's flow style),
    /// decoded exactly as the loader decodes it inside a config file: unknown keys are errors
    /// (with a suggestion), `${VAR}` is substituted from `environment`, and every problem is a
    /// `ConfigDiagnostic` with its line and a dotted path under `key` (`settings.level`).
    ///
    /// For stage tests (`GatewayTesting`'s `StageHarness` builds stages with it) and tools that
    /// check one block. Syntax errors and duplicate keys throw at once; value errors when the
    /// factory decodes the block.
    public static func settingsSource(
        text: String, file: String = "settings.yaml", key: String = "settings", environment: [String: String] = [:]
    ) throws(ConfigError) -> any SettingsSource {
        let root = try YAMLDocument.parse(text, file: file)
        let block: ConfigNode = root.isNull ? .emptyMapping(at: root.position) : root
        return YAMLSettingsSource(node: block, path: key.isEmpty ? [] : [.key(key)], file: file, environment: environment)
    }
}
