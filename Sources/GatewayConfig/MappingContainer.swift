/// The keyed container over a YAML mapping: records each key asked about, for the unknown-key
/// check.
struct MappingContainer<Key: CodingKey>: KeyedDecodingContainerProtocol {
    let mapping: ConfigNode.Mapping
    let codingPath: [any CodingKey]
    let run: DecodingRun

    var allKeys: [Key] {
        mapping.entries.compactMap { Key(stringValue: $0.key) }
    }

    func contains(_ key: Key) -> Bool {
        run.ask(key.stringValue, in: mapping)
        return mapping.entry(forKey: key.stringValue) != nil
    }

    private func value(for key: Key) throws -> ConfigNode {
        run.ask(key.stringValue, in: mapping)
        guard let entry = mapping.entry(forKey: key.stringValue) else {
            throw DecodingError.keyNotFound(key, .init(codingPath: codingPath, debugDescription: "missing required key '\(key.stringValue)'"))
        }
        return entry.value
    }

    private func decoder(for key: Key) throws -> NodeDecoder {
        NodeDecoder(node: try value(for: key), codingPath: codingPath + [key], run: run)
    }

    func decodeNil(forKey key: Key) throws -> Bool {
        try value(for: key).isNull
    }

    /// The one path every `decode` overload takes; named apart so the overloads below do not
    /// call themselves.
    private func decodeAny<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
        try run.decodeValue(type, from: value(for: key), at: codingPath + [key])
    }

    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T { try decodeAny(type, forKey: key) }
    func decode(_ type: Bool.Type, forKey key: Key) throws -> Bool { try decodeAny(type, forKey: key) }
    func decode(_ type: String.Type, forKey key: Key) throws -> String { try decodeAny(type, forKey: key) }
    func decode(_ type: Double.Type, forKey key: Key) throws -> Double { try decodeAny(type, forKey: key) }
    func decode(_ type: Float.Type, forKey key: Key) throws -> Float { try decodeAny(type, forKey: key) }
    func decode(_ type: Int.Type, forKey key: Key) throws -> Int { try decodeAny(type, forKey: key) }
    func decode(_ type: Int8.Type, forKey key: Key) throws -> Int8 { try decodeAny(type, forKey: key) }
    func decode(_ type: Int16.Type, forKey key: Key) throws -> Int16 { try decodeAny(type, forKey: key) }
    func decode(_ type: Int32.Type, forKey key: Key) throws -> Int32 { try decodeAny(type, forKey: key) }
    func decode(_ type: Int64.Type, forKey key: Key) throws -> Int64 { try decodeAny(type, forKey: key) }
    func decode(_ type: UInt.Type, forKey key: Key) throws -> UInt { try decodeAny(type, forKey: key) }
    func decode(_ type: UInt8.Type, forKey key: Key) throws -> UInt8 { try decodeAny(type, forKey: key) }
    func decode(_ type: UInt16.Type, forKey key: Key) throws -> UInt16 { try decodeAny(type, forKey: key) }
    func decode(_ type: UInt32.Type, forKey key: Key) throws -> UInt32 { try decodeAny(type, forKey: key) }
    func decode(_ type: UInt64.Type, forKey key: Key) throws -> UInt64 { try decodeAny(type, forKey: key) }

    func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type, forKey key: Key) throws -> KeyedDecodingContainer<NestedKey> {
        try decoder(for: key).container(keyedBy: type)
    }

    func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer {
        try decoder(for: key).unkeyedContainer()
    }

    func superDecoder() throws -> any Decoder {
        try superDecoder(forKey: PathKey.key("super"))
    }

    func superDecoder(forKey key: Key) throws -> any Decoder {
        try superDecoder(forKey: PathKey.key(key.stringValue))
    }

    /// A decoder for `key`'s value, or for a null when the key is absent (as Foundation's
    /// decoders do), so that a superclass may decode its defaults.
    private func superDecoder(forKey key: PathKey) throws -> any Decoder {
        run.ask(key.stringValue, in: mapping)
        let value = mapping.entry(forKey: key.stringValue)?.value
            ?? .scalar(.init(text: "", isNull: true, position: mapping.position))
        return NodeDecoder(node: value, codingPath: codingPath + [key], run: run)
    }
}
