import GatewayConfig
import GatewayCore

/// Loads `text`, returning the configuration or nil when it fails, and the error if any.
func loadConfig(_ text: String, file: String = "c.yaml", environment: [String: String] = [:]) -> Result<GatewayConfiguration, ConfigError> {
    Result { () throws(ConfigError) in try ConfigLoader.load(text: text, file: file, environment: environment) }
}

/// The error loading `text` fails with, or nil when it loads.
func loadError(_ text: String, file: String = "c.yaml", environment: [String: String] = [:]) -> ConfigError? {
    if case .failure(let error) = loadConfig(text, file: file, environment: environment) { return error }
    return nil
}

/// The error decoding a settings block fails with, or nil when it decodes.
func decodeError<T: Decodable>(_ type: T.Type, from source: any SettingsSource) -> ConfigError? {
    do {
        _ = try source.decode(type)
        return nil
    } catch let error as ConfigError {
        return error
    } catch {
        return ConfigError(diagnostics: [ConfigDiagnostic(file: "", line: 0, column: 0, path: "", message: "not a ConfigError: \(error)")])
    }
}

/// A config whose only pipeline entry (`stage: test`) has `settings` as its block, indented
/// under it; line 4 of the document is the block's first line.
func configWithSettings(_ settings: String) -> String {
    let block = settings.split(separator: "\n", omittingEmptySubsequences: false).map { "      " + $0 }.joined(separator: "\n")
    return """
    pipeline:
      - stage: test
        settings:
    \(block)
    """
}

/// The settings source of that single entry.
func settingsSource(_ settings: String, environment: [String: String] = [:]) throws(ConfigError) -> any SettingsSource {
    let configuration = try ConfigLoader.load(text: configWithSettings(settings), file: "c.yaml", environment: environment)
    return configuration.pipeline[0].settings
}
