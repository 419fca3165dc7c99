/// The parsed YAML document as a `Sendable` value tree that keeps every node's position.
///
/// `Yams.Node` holds its tag in a class (`Tag`) and is not `Sendable`; a settings source must be,
/// because stage factories may decode it from any task. So the loader composes once with Yams and
/// copies the result into this tree, resolving what the decoder needs to know (null-ness, merge
/// keys) while Yams' resolver is at hand.
enum ConfigNode: Sendable {
    case scalar(Scalar)
    case mapping(Mapping)
    case sequence(Sequence)

    struct Scalar: Sendable {
        /// The text as written (after YAML unescaping), before `${VAR}` substitution.
        var text: String
        /// A plain `~`, `null`, `Null`, `NULL` or empty scalar, or one tagged `!!null`.
        var isNull: Bool
        var position: Position
    }

    struct Mapping: Sendable {
        struct Entry: Sendable {
            var key: String
            var keyPosition: Position
            var value: ConfigNode
        }

        /// Unique within one loaded document: the decoder records per mapping which keys were
        /// asked for, to report the others as unknown.
        var id: Int
        var entries: [Entry]
        var position: Position

        func entry(forKey key: String) -> Entry? {
            entries.first { $0.key == key }
        }
    }

    struct Sequence: Sendable {
        var elements: [ConfigNode]
        var position: Position
    }

    /// An empty mapping standing in for an absent or null `settings:` block, so that a stage
    /// without settings decodes its defaults. Its id is never handed out by the converter.
    static func emptyMapping(at position: Position) -> ConfigNode {
        .mapping(Mapping(id: -1, entries: [], position: position))
    }

    var position: Position {
        switch self {
        case .scalar(let scalar): scalar.position
        case .mapping(let mapping): mapping.position
        case .sequence(let sequence): sequence.position
        }
    }

    var isNull: Bool {
        if case .scalar(let scalar) = self { return scalar.isNull }
        return false
    }

    /// How an error message names this node: `'abc'`, `a mapping`, `a list`, `null`.
    var summary: String {
        switch self {
        case .scalar(let scalar):
            if scalar.isNull { return "null" }
            return Self.quote(scalar.text)
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        }
    }

    /// Quotes a value for a message, cut short so one long line does not swamp the output.
    static func quote(_ text: String) -> String {
        let limit = 48
        if text.count <= limit { return "'\(text)'" }
        return "'\(text.prefix(limit))…'"
    }

    /// The node at `path`, or the deepest node on the way when the path leaves the tree (a
    /// missing key is reported at the mapping that should have held it).
    func locate(_ path: some Collection<PathKey>) -> ConfigNode {
        var node = self
        for step in path {
            switch (node, step) {
            case (.mapping(let mapping), _):
                guard let entry = mapping.entry(forKey: step.stringValue) else { return node }
                node = entry.value
            case (.sequence(let sequence), .index(let index)):
                guard sequence.elements.indices.contains(index) else { return node }
                node = sequence.elements[index]
            default:
                return node
            }
        }
        return node
    }
}
