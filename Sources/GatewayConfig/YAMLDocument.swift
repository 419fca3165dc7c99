import Yams

/// Turns YAML text into a `ConfigNode` tree, or into diagnostics for syntax errors and
/// duplicate keys.
enum YAMLDocument {
    /// Parses `text`; an empty document is an empty mapping.
    static func parse(_ text: String, file: String) throws(ConfigError) -> ConfigNode {
        let composed = try compose(text, file: file)
        var converter = Converter(file: file)
        let root = composed.root.map { converter.convert($0, path: []) } ?? .emptyMapping(at: .start)
        if !composed.renamedKeys.isEmpty {
            throw ConfigError(diagnostics: ConfigError.ordered(
                duplicateDiagnostics(composed.renamedKeys, in: root, file: file) + converter.diagnostics
            ))
        }
        if !converter.diagnostics.isEmpty {
            throw ConfigError(diagnostics: ConfigError.ordered(converter.diagnostics))
        }
        return root
    }

    // MARK: Composing, with duplicate keys located

    /// A duplicate key's first occurrence, renamed in the text so that Yams lets the parse
    /// continue.
    struct RenamedKey {
        var key: String
        var position: Position
    }

    /// Composes with Yams. Yams refuses a mapping with a duplicate key outright, naming only the
    /// key and its first position, with no path and no tree to find one. To name the path and
    /// the second occurrence, the first occurrence is renamed in place (same length, so every
    /// position stays put) and the text composed again; the renamed keys are then found in the
    /// tree by position.
    static func compose(_ text: String, file: String) throws(ConfigError) -> (root: Yams.Node?, renamedKeys: [RenamedKey]) {
        var source = maskVariableReferences(text)
        var renamed: [RenamedKey] = []
        // Each pass removes one duplicate; a document with more than this many is not worth
        // locating one by one.
        let maximumPasses = 64
        for pass in 0..<maximumPasses {
            do {
                return (try Yams.compose(yaml: source), renamed)
            } catch YamlError.duplicatedKeysInMapping(let duplicates, let context) {
                let position = Position(line: context.mark.line, column: context.mark.column)
                guard let key = duplicates.first,
                      let patched = renameKey(key, at: position, in: source, pass: pass)
                else {
                    let names = duplicates.map { ConfigNode.quote(unmask($0)) }.joined(separator: ", ")
                    throw ConfigError(diagnostics: unlocated(renamed, file: file) + [
                        ConfigDiagnostic(file: file, line: position.line, column: position.column, path: "", message: "duplicate key \(names)"),
                    ])
                }
                renamed.append(RenamedKey(key: unmask(key), position: position))
                source = patched
            } catch let error as YamlError {
                throw ConfigError(diagnostics: unlocated(renamed, file: file) + [syntaxDiagnostic(error, text: text, file: file)])
            } catch {
                throw ConfigError(ConfigDiagnostic(file: file, line: 0, column: 0, path: "", message: "cannot parse the YAML: \(error)"))
            }
        }
        throw ConfigError(diagnostics: unlocated(renamed, file: file))
    }

    /// Duplicates reported without a path, when the document could not be composed to find one.
    private static func unlocated(_ renamed: [RenamedKey], file: String) -> [ConfigDiagnostic] {
        renamed.map {
            ConfigDiagnostic(file: file, line: $0.position.line, column: $0.position.column, path: "", message: "duplicate key '\($0.key)'")
        }
    }

    /// Replaces the key written at `position` with a placeholder of the same number of Unicode
    /// scalars, or returns nil when the key is not written there verbatim (an escaped or
    /// multi-line key).
    static func renameKey(_ key: String, at position: Position, in source: String, pass: Int) -> String? {
        var lines = source.split(separator: "\n", omittingEmptySubsequences: false)
        let lineIndex = position.line - 1
        guard lines.indices.contains(lineIndex) else { return nil }
        var scalars = Array(lines[lineIndex].unicodeScalars)
        var start = position.column - 1
        guard scalars.indices.contains(start) else { return nil }
        if scalars[start] == "\"" || scalars[start] == "'" { start += 1 }
        let keyScalars = Array(key.unicodeScalars)
        let end = start + keyScalars.count
        guard !keyScalars.isEmpty, end <= scalars.count, Array(scalars[start..<end]) == keyScalars else { return nil }
        // A letter from Latin Extended-A, different on every pass so that two placeholders of the
        // same length in one mapping never collide, and unlike anything in a real config.
        guard let letter = Unicode.Scalar(0x100 + pass) else { return nil }
        for index in start..<end { scalars[index] = letter }
        var line = String.UnicodeScalarView()
        line.append(contentsOf: scalars)
        lines[lineIndex] = Substring(String(line))
        return lines.joined(separator: "\n")
    }

    /// One diagnostic per later occurrence of each duplicated key, with its path.
    static func duplicateDiagnostics(_ renamed: [RenamedKey], in root: ConfigNode, file: String) -> [ConfigDiagnostic] {
        var diagnostics: [ConfigDiagnostic] = []
        var reported = Set<Position>()
        for item in renamed {
            guard let (mapping, path) = findMapping(withKeyAt: item.position, in: root, path: []) else {
                diagnostics += unlocated([item], file: file)
                continue
            }
            let renamedHere = Set(renamed.filter { $0.key == item.key }.map(\.position))
            let occurrences = mapping.entries
                .filter { $0.key == item.key || renamedHere.contains($0.keyPosition) }
                .map(\.keyPosition)
                .sorted()
            guard let first = occurrences.first else { continue }
            for later in occurrences.dropFirst() where reported.insert(later).inserted {
                diagnostics.append(ConfigDiagnostic(
                    file: file, line: later.line, column: later.column,
                    path: PathKey.render(path + [.key(item.key)]),
                    message: "duplicate key '\(item.key)' (first at line \(first.line))"
                ))
            }
        }
        return diagnostics
    }

    private static func findMapping(withKeyAt position: Position, in node: ConfigNode, path: [PathKey]) -> (ConfigNode.Mapping, [PathKey])? {
        switch node {
        case .scalar:
            return nil
        case .mapping(let mapping):
            if mapping.entries.contains(where: { $0.keyPosition == position }) { return (mapping, path) }
            for entry in mapping.entries {
                if let found = findMapping(withKeyAt: position, in: entry.value, path: path + [.key(entry.key)]) { return found }
            }
            return nil
        case .sequence(let sequence):
            for (index, element) in sequence.elements.enumerated() {
                if let found = findMapping(withKeyAt: position, in: element, path: path + [.index(index)]) { return found }
            }
            return nil
        }
    }

    // MARK: Syntax errors

    static func syntaxDiagnostic(_ error: YamlError, text: String, file: String) -> ConfigDiagnostic {
        func located(_ mark: Mark, _ problem: String, _ context: YamlError.Context?) -> ConfigDiagnostic {
            var message = "invalid YAML: \(problem)"
            if let context {
                message += " (\(context.text) at line \(context.mark.line))"
            }
            return ConfigDiagnostic(file: file, line: mark.line, column: mark.column, path: "", message: message)
        }
        switch error {
        case .scanner(let context, let problem, let mark, _),
             .parser(let context, let problem, let mark, _),
             .composer(let context, let problem, let mark, _):
            return located(mark, problem, context)
        case .reader(let problem, let offset, _, _):
            let position = offset.map { self.position(ofCharacterOffset: $0, in: text) } ?? Position(line: 0, column: 0)
            return ConfigDiagnostic(file: file, line: position.line, column: position.column, path: "", message: "invalid YAML: \(problem)")
        default:
            return ConfigDiagnostic(file: file, line: 0, column: 0, path: "", message: "invalid YAML: \(error)")
        }
    }

    /// Line and column of the `offset`-th character (the unit Yams reports reader errors in).
    static func position(ofCharacterOffset offset: Int, in text: String) -> Position {
        var line = 1
        var column = 1
        for character in text.prefix(offset) {
            if character.isNewline {
                line += 1
                column = 1
            } else {
                column += character.unicodeScalars.count
            }
        }
        return Position(line: line, column: column)
    }
}
