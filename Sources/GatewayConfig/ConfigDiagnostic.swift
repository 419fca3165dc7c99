/// One problem in a config file, with where it is: rendered like a compiler diagnostic.
///
/// ```
/// config.yaml:14:7: error: pipeline[2].settings.level: must be 1...19 (was 0)
/// ```
public struct ConfigDiagnostic: Sendable, Hashable, CustomStringConvertible {
    /// The file name as given to the loader.
    public var file: String
    /// 1-based line; 0 when the problem has no position (the file cannot be read).
    public var line: Int
    /// 1-based column, counted in Unicode scalars; 0 when the problem has no position.
    public var column: Int
    /// The dotted YAML path (`pipeline[2].settings.level`); empty for the whole document.
    public var path: String
    /// What is wrong, in words an operator can act on.
    public var message: String

    /// A diagnostic at `line` and `column` of `file`, about the node at `path`.
    public init(file: String, line: Int, column: Int, path: String, message: String) {
        self.file = file
        self.line = line
        self.column = column
        self.path = path
        self.message = message
    }

    /// `file:line:column: error: path: message`, leaving out the position and path when there
    /// are none.
    public var description: String {
        let location = line > 0 ? "\(file):\(line):\(column)" : file
        let subject = path.isEmpty ? "" : "\(path): "
        return "\(location): error: \(subject)\(message)"
    }
}
