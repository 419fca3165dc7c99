/// One decode of a tree (the whole document, or one stage's `settings:` block): the state the
/// decoder shares across its containers, and what turns failures into diagnostics.
///
/// Not `Sendable`, and need not be: a run lives inside one synchronous `decode` call.
final class DecodingRun {
    let file: String
    let environment: [String: String]
    /// The node the run decodes, and its path in the document (`pipeline[2].settings`).
    let root: ConfigNode
    let basePath: [PathKey]
    /// What `Decodable` types see as `decoder.userInfo` (the known stage kinds, say).
    let userInfo: [CodingUserInfoKey: Any]

    /// Per mapping id, every key the `Decodable` asked about, present or not: the keys it knows.
    private var askedKeys: [Int: Set<String>] = [:]
    /// Mappings whose decoding finished without error: only there is a key never asked about
    /// known to be unknown (a failed decode stops before asking for the rest).
    private var completed: Set<Int> = []
    /// For each `Decodable` being decoded, innermost last, the mappings opened while doing it.
    private var openFrames: [[Int]] = []
    /// Failures a `Decodable` might swallow with `try?` and that must fail the load anyway.
    private var recorded: [ConfigDiagnostic] = []

    private init(root: ConfigNode, basePath: [PathKey], file: String, environment: [String: String], userInfo: [CodingUserInfoKey: Any]) {
        self.userInfo = userInfo
        self.root = root
        self.basePath = basePath
        self.file = file
        self.environment = environment
    }

    /// Decodes `type` from `node`, then reports every unknown key in it, all in one error.
    static func decode<T: Decodable>(
        _ type: T.Type, from node: ConfigNode, at basePath: [PathKey], file: String, environment: [String: String],
        userInfo: [CodingUserInfoKey: Any] = [:]
    ) throws(ConfigError) -> T {
        let run = DecodingRun(root: node, basePath: basePath, file: file, environment: environment, userInfo: userInfo)
        var diagnostics: [ConfigDiagnostic] = []
        var value: T?
        do {
            value = try run.decodeValue(type, from: node, at: basePath)
            // The top node counts as decoded even when the type never opened it (an empty
            // settings struct), so that keys given to a stage that takes none are reported.
            if case .mapping(let mapping) = node { run.completed.insert(mapping.id) }
        } catch {
            diagnostics += run.diagnostics(for: error)
        }
        diagnostics += run.recorded
        diagnostics += run.unknownKeyDiagnostics()
        if diagnostics.isEmpty, let value { return value }
        if diagnostics.isEmpty {
            diagnostics.append(run.diagnostic(at: basePath, "cannot be decoded"))
        }
        throw ConfigError(diagnostics: ConfigError.ordered(diagnostics))
    }

    // MARK: Bookkeeping for the decoder

    func ask(_ key: String, in mapping: ConfigNode.Mapping) {
        askedKeys[mapping.id, default: []].insert(key)
    }

    func opened(_ mapping: ConfigNode.Mapping) {
        guard !openFrames.isEmpty else { return }
        openFrames[openFrames.count - 1].append(mapping.id)
    }

    /// Decodes any `Decodable` from `node`: scalars directly, everything else through its
    /// `init(from:)` with a decoder over the node.
    func decodeValue<T: Decodable>(_ type: T.Type, from node: ConfigNode, at path: [any CodingKey]) throws -> T {
        if let value = try decodeScalar(type, from: node, at: path) { return value }
        openFrames.append([])
        do {
            let value = try T(from: NodeDecoder(node: node, codingPath: path, run: self))
            completed.formUnion(openFrames.removeLast())
            return value
        } catch let error as DecodingError {
            openFrames.removeLast()
            throw error
        } catch let error as LocatedFailure {
            openFrames.removeLast()
            throw error
        } catch let error as ConfigError {
            openFrames.removeLast()
            throw error
        } catch {
            openFrames.removeLast()
            // A validation error of the type's own: it belongs to the node being decoded.
            throw LocatedFailure(path: path.map(PathKey.init), message: "\(error)")
        }
    }

    /// The scalar's text with `${VAR}` substituted.
    func text(of scalar: ConfigNode.Scalar, at path: [any CodingKey]) throws -> String {
        do throws(EnvironmentSubstitution.Failure) {
            return try EnvironmentSubstitution.apply(scalar.text, environment: environment)
        } catch {
            recorded.append(diagnostic(at: path, error.message))
            throw DecodingError.dataCorrupted(.init(codingPath: path, debugDescription: error.message))
        }
    }

    // MARK: Diagnostics

    func diagnostics(for error: any Error) -> [ConfigDiagnostic] {
        switch error {
        case let error as ConfigError:
            return error.diagnostics
        case let failure as LocatedFailure:
            return [diagnostic(at: failure.path, failure.message)]
        case let error as DecodingError:
            switch error {
            case .typeMismatch(_, let context), .valueNotFound(_, let context), .dataCorrupted(let context):
                let message = context.debugDescription.isEmpty ? "invalid value" : context.debugDescription
                return [diagnostic(at: context.codingPath, message)]
            case .keyNotFound(let key, let context):
                return [diagnostic(at: context.codingPath, missingKeyMessage(key.stringValue, in: context.codingPath))]
            @unknown default:
                return [diagnostic(at: basePath, "\(error)")]
            }
        default:
            return [diagnostic(at: basePath, "\(error)")]
        }
    }

    /// A diagnostic at the node `path` leads to (or the deepest node on the way).
    func diagnostic(at path: [any CodingKey], _ message: String) -> ConfigDiagnostic {
        let keys = path.map(PathKey.init)
        let full: [PathKey]
        let relative: ArraySlice<PathKey>
        if keys.starts(with: basePath) {
            full = keys
            relative = keys.dropFirst(basePath.count)
        } else {
            // A path a type built by hand, relative to what it was decoding.
            full = basePath + keys
            relative = keys[...]
        }
        let position = root.locate(relative).position
        return ConfigDiagnostic(file: file, line: position.line, column: position.column, path: PathKey.render(full), message: message)
    }

    private func missingKeyMessage(_ key: String, in path: [any CodingKey]) -> String {
        var message = "missing required key '\(key)'"
        let relative = path.map(PathKey.init).dropFirst(basePath.count)
        if case .mapping(let mapping) = root.locate(relative) {
            let asked = askedKeys[mapping.id] ?? []
            let candidates = mapping.entries.map(\.key).filter { !asked.contains($0) }
            if let typo = KeySuggestion.closest(to: key, among: candidates) {
                message += " (is '\(typo)' a typo?)"
            }
        }
        return message
    }

    /// Every key of a completely decoded mapping that the `Decodable` never asked about.
    private func unknownKeyDiagnostics() -> [ConfigDiagnostic] {
        var diagnostics: [ConfigDiagnostic] = []
        collectUnknownKeys(in: root, path: basePath, into: &diagnostics)
        return diagnostics
    }

    private func collectUnknownKeys(in node: ConfigNode, path: [PathKey], into diagnostics: inout [ConfigDiagnostic]) {
        switch node {
        case .scalar:
            return
        case .sequence(let sequence):
            for (index, element) in sequence.elements.enumerated() {
                collectUnknownKeys(in: element, path: path + [.index(index)], into: &diagnostics)
            }
        case .mapping(let mapping):
            let asked = askedKeys[mapping.id] ?? []
            let isComplete = completed.contains(mapping.id)
            for entry in mapping.entries {
                if asked.contains(entry.key) {
                    // A captured `settings:` block is asked for but never opened here, so this
                    // finds nothing in it: its own decode checks it.
                    collectUnknownKeys(in: entry.value, path: path + [.key(entry.key)], into: &diagnostics)
                } else if isComplete {
                    var message = "unknown key '\(entry.key)'"
                    if let suggestion = KeySuggestion.closest(to: entry.key, among: asked.sorted()) {
                        message += " (did you mean '\(suggestion)'?)"
                    }
                    diagnostics.append(ConfigDiagnostic(
                        file: file, line: entry.keyPosition.line, column: entry.keyPosition.column,
                        path: PathKey.render(path + [.key(entry.key)]), message: message
                    ))
                }
            }
        }
    }
}
