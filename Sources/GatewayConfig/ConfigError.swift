import GatewayCore

/// A config file that cannot be used: every problem found, each with its file, line, column
/// and YAML path.
///
/// The description lists the diagnostics one per line, in file order, ready to print as is:
///
/// ```
/// config.yaml:3:3: error: node.workr_id: unknown key 'workr_id' (did you mean 'worker_id'?)
/// config.yaml:9:11: error: listen.public.port: expected an integer, got 'abc'
/// ```
public struct ConfigError: LocatedConfigError, Sendable {
    /// The problems, in file order (line, then column). Never empty.
    public var diagnostics: [ConfigDiagnostic]

    /// An error made of `diagnostics`, kept in the order given.
    public init(diagnostics: [ConfigDiagnostic]) {
        self.diagnostics = diagnostics
    }

    init(_ diagnostic: ConfigDiagnostic) {
        self.diagnostics = [diagnostic]
    }

    /// The diagnostics, one per line.
    public var description: String {
        diagnostics.map(\.description).joined(separator: "\n")
    }

    /// Sorts by position and drops repeats (one failure may be seen by two checks).
    static func ordered(_ diagnostics: [ConfigDiagnostic]) -> [ConfigDiagnostic] {
        var seen = Set<ConfigDiagnostic>()
        let unique = diagnostics.filter { seen.insert($0).inserted }
        // Enumerated so that equal positions keep the order in which they were found.
        return unique.enumerated().sorted { a, b in
            (a.element.line, a.element.column, a.offset) < (b.element.line, b.element.column, b.offset)
        }.map(\.element)
    }
}
