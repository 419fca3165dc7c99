import Yams

extension YAMLDocument {
    /// Copies a `Yams.Node` tree into `ConfigNode`s, numbering mappings, applying merge keys
    /// (`<<: *defaults`) and reporting keys that are not scalars or that repeat.
    struct Converter {
        let file: String
        private(set) var diagnostics: [ConfigDiagnostic] = []
        private var nextID = 0
        private var nodeCount = 0
        /// Aliases are expanded (Yams composes them as copies), so a few nested aliases can
        /// stand for a huge tree ("billion laughs"); past this many nodes the rest is dropped
        /// with an error instead of exhausting memory.
        private static let maximumNodes = 1_000_000

        init(file: String) {
            self.file = file
        }

        mutating func convert(_ node: Yams.Node, path: [PathKey]) -> ConfigNode {
            let position = Self.position(of: node)
            nodeCount += 1
            if nodeCount == Self.maximumNodes {
                report(at: position, path: path, "the document has more than \(Self.maximumNodes) nodes once aliases are expanded")
            }
            if nodeCount >= Self.maximumNodes {
                return .scalar(.init(text: "", isNull: true, position: position))
            }
            switch node {
            case .scalar(let scalar):
                let isNull = node.tag.description == Tag.Name.null.rawValue
                return .scalar(.init(text: YAMLDocument.unmask(scalar.string), isNull: isNull, position: position))
            case .sequence(let sequence):
                let elements = sequence.enumerated().map { index, element in
                    convert(element, path: path + [.index(index)])
                }
                return .sequence(.init(elements: elements, position: position))
            case .mapping(let mapping):
                return .mapping(convertMapping(mapping, at: position, path: path))
            case .alias:
                // Yams.compose replaces aliases by the anchored node; keep a null rather than trap
                // should a future version hand one through.
                return .scalar(.init(text: "", isNull: true, position: position))
            }
        }

        private mutating func convertMapping(_ mapping: Yams.Node.Mapping, at position: Position, path: [PathKey]) -> ConfigNode.Mapping {
            let id = nextID
            nextID += 1
            var entries: [ConfigNode.Mapping.Entry] = []
            var merged: [ConfigNode.Mapping.Entry] = []
            for (keyNode, valueNode) in mapping {
                let keyPosition = Self.position(of: keyNode)
                guard case .scalar(let keyScalar) = keyNode else {
                    report(at: keyPosition, path: path, "mapping keys must be strings, not \(keyNode.sequence != nil ? "lists" : "mappings")")
                    continue
                }
                if keyNode.tag.description == Tag.Name.merge.rawValue {
                    merged += mergeEntries(valueNode, path: path)
                    continue
                }
                let key = YAMLDocument.unmask(keyScalar.string)
                if let first = entries.first(where: { $0.key == key }) {
                    // Yams catches most repeats while composing; this catches the ones it tells
                    // apart by tag (`1` and `"1"`), which are the same key to a decoder.
                    report(at: keyPosition, path: path + [.key(key)], "duplicate key '\(key)' (first at line \(first.keyPosition.line))")
                    continue
                }
                let value = convert(valueNode, path: path + [.key(key)])
                entries.append(.init(key: key, keyPosition: keyPosition, value: value))
            }
            // Explicit keys win over merged ones, and earlier merge sources over later ones.
            for entry in merged where !entries.contains(where: { $0.key == entry.key }) {
                entries.append(entry)
            }
            return ConfigNode.Mapping(id: id, entries: entries, position: position)
        }

        /// The entries a `<<` key brings in: from one mapping or a list of mappings.
        private mutating func mergeEntries(_ value: Yams.Node, path: [PathKey]) -> [ConfigNode.Mapping.Entry] {
            let sources: [Yams.Node]
            switch value {
            case .mapping: sources = [value]
            case .sequence(let sequence): sources = Array(sequence)
            default: sources = []
            }
            var entries: [ConfigNode.Mapping.Entry] = []
            for source in sources {
                guard case .mapping(let mapping) = source else {
                    report(at: Self.position(of: source), path: path, "a merge key ('<<') takes a mapping or a list of mappings")
                    continue
                }
                let converted = convertMapping(mapping, at: Self.position(of: source), path: path)
                for entry in converted.entries where !entries.contains(where: { $0.key == entry.key }) {
                    entries.append(entry)
                }
            }
            if sources.isEmpty {
                report(at: Self.position(of: value), path: path, "a merge key ('<<') takes a mapping or a list of mappings")
            }
            return entries
        }

        private mutating func report(at position: Position, path: [PathKey], _ message: String) {
            diagnostics.append(ConfigDiagnostic(file: file, line: position.line, column: position.column, path: PathKey.render(path), message: message))
        }

        private static func position(of node: Yams.Node) -> Position {
            guard let mark = node.mark else { return Position(line: 0, column: 0) }
            return Position(line: mark.line, column: mark.column)
        }
    }
}
