import GatewayCore

/// A `Decoder` over one `ConfigNode`: what `Decodable` types in the config see.
///
/// Every container reports the keys it is asked about to the run, so that keys nobody asked
/// about can be reported as unknown once decoding is done; scalars get `${VAR}` substituted
/// as they are read, so an error points at the scalar's own line.
struct NodeDecoder: SettingsCapturingDecoder {
    let node: ConfigNode
    let codingPath: [any CodingKey]
    let run: DecodingRun

    var userInfo: [CodingUserInfoKey: Any] { run.userInfo }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        let mapping = try self.mapping()
        run.opened(mapping)
        return KeyedDecodingContainer(MappingContainer<Key>(mapping: mapping, codingPath: codingPath, run: run))
    }

    func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        switch node {
        case .sequence(let sequence):
            return SequenceContainer(sequence: sequence, codingPath: codingPath, run: run)
        case .scalar(let scalar) where scalar.isNull:
            throw DecodingError.valueNotFound([Any].self, .init(codingPath: codingPath, debugDescription: "expected a list, got null"))
        default:
            throw DecodingError.typeMismatch([Any].self, .init(codingPath: codingPath, debugDescription: "expected a list, got \(node.summary)"))
        }
    }

    func singleValueContainer() throws -> any SingleValueDecodingContainer {
        ScalarContainer(node: node, codingPath: codingPath, run: run)
    }

    /// The block under `key`, kept undecoded for the stage's factory. An absent or null block is
    /// an empty mapping, so that a stage without `settings:` decodes its defaults.
    func settingsSource(forKey key: String) throws -> any SettingsSource {
        let mapping = try self.mapping()
        // Asked for, so not unknown; the block itself is checked when the factory decodes it.
        run.ask(key, in: mapping)
        let path = codingPath.map(PathKey.init) + [.key(key)]
        let block: ConfigNode
        if let entry = mapping.entry(forKey: key) {
            block = entry.value.isNull ? .emptyMapping(at: entry.value.position) : entry.value
        } else {
            block = .emptyMapping(at: mapping.position)
        }
        return YAMLSettingsSource(node: block, path: path, file: run.file, environment: run.environment)
    }

    private func mapping() throws -> ConfigNode.Mapping {
        switch node {
        case .mapping(let mapping):
            return mapping
        case .scalar(let scalar) where scalar.isNull:
            throw DecodingError.valueNotFound([String: Any].self, .init(codingPath: codingPath, debugDescription: "expected a mapping, got null"))
        default:
            throw DecodingError.typeMismatch([String: Any].self, .init(codingPath: codingPath, debugDescription: "expected a mapping, got \(node.summary)"))
        }
    }
}
