/// Where a stage's settings come from: the YAML block under `settings:`, decoded with the
/// YAML path and line kept for error messages (the config module provides it).
public protocol SettingsSource: Sendable {
    /// Decodes the block (an empty one when the stage has no `settings:`). Unknown keys and
    /// invalid values throw an error that names the file, the YAML path and the line.
    func decode<T: Decodable>(_ type: T.Type) throws -> T
}
