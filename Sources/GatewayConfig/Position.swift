/// A position in the YAML text: 1-based line and column (columns in Unicode scalars, as libyaml
/// counts them).
struct Position: Sendable, Hashable, Comparable {
    var line: Int
    var column: Int

    static let start = Position(line: 1, column: 1)

    static func < (a: Position, b: Position) -> Bool {
        (a.line, a.column) < (b.line, b.column)
    }
}
