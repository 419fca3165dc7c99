/// The unkeyed container over a YAML sequence; item paths are `[n]`.
struct SequenceContainer: UnkeyedDecodingContainer {
    let sequence: ConfigNode.Sequence
    let codingPath: [any CodingKey]
    let run: DecodingRun
    private(set) var currentIndex = 0

    init(sequence: ConfigNode.Sequence, codingPath: [any CodingKey], run: DecodingRun) {
        self.sequence = sequence
        self.codingPath = codingPath
        self.run = run
    }

    var count: Int? { sequence.elements.count }
    var isAtEnd: Bool { currentIndex >= sequence.elements.count }

    private var currentPath: [any CodingKey] { codingPath + [PathKey.index(currentIndex)] }

    private func current(_ type: Any.Type) throws -> ConfigNode {
        guard !isAtEnd else {
            throw DecodingError.valueNotFound(type, .init(
                codingPath: currentPath, debugDescription: "expected another item, the list has only \(sequence.elements.count)"
            ))
        }
        return sequence.elements[currentIndex]
    }

    mutating func decodeNil() throws -> Bool {
        let isNull = try current(Never.self).isNull
        if isNull { currentIndex += 1 }
        return isNull
    }

    private mutating func decodeAny<T: Decodable>(_ type: T.Type) throws -> T {
        let value = try run.decodeValue(type, from: current(type), at: currentPath)
        currentIndex += 1
        return value
    }

    mutating func decode<T: Decodable>(_ type: T.Type) throws -> T { try decodeAny(type) }
    mutating func decode(_ type: Bool.Type) throws -> Bool { try decodeAny(type) }
    mutating func decode(_ type: String.Type) throws -> String { try decodeAny(type) }
    mutating func decode(_ type: Double.Type) throws -> Double { try decodeAny(type) }
    mutating func decode(_ type: Float.Type) throws -> Float { try decodeAny(type) }
    mutating func decode(_ type: Int.Type) throws -> Int { try decodeAny(type) }
    mutating func decode(_ type: Int8.Type) throws -> Int8 { try decodeAny(type) }
    mutating func decode(_ type: Int16.Type) throws -> Int16 { try decodeAny(type) }
    mutating func decode(_ type: Int32.Type) throws -> Int32 { try decodeAny(type) }
    mutating func decode(_ type: Int64.Type) throws -> Int64 { try decodeAny(type) }
    mutating func decode(_ type: UInt.Type) throws -> UInt { try decodeAny(type) }
    mutating func decode(_ type: UInt8.Type) throws -> UInt8 { try decodeAny(type) }
    mutating func decode(_ type: UInt16.Type) throws -> UInt16 { try decodeAny(type) }
    mutating func decode(_ type: UInt32.Type) throws -> UInt32 { try decodeAny(type) }
    mutating func decode(_ type: UInt64.Type) throws -> UInt64 { try decodeAny(type) }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type) throws -> KeyedDecodingContainer<NestedKey> {
        let container = try NodeDecoder(node: current(KeyedDecodingContainer<NestedKey>.self), codingPath: currentPath, run: run)
            .container(keyedBy: type)
        currentIndex += 1
        return container
    }

    mutating func nestedUnkeyedContainer() throws -> any UnkeyedDecodingContainer {
        let container = try NodeDecoder(node: current([Any].self), codingPath: currentPath, run: run).unkeyedContainer()
        currentIndex += 1
        return container
    }

    mutating func superDecoder() throws -> any Decoder {
        let decoder = NodeDecoder(node: try current(Never.self), codingPath: currentPath, run: run)
        currentIndex += 1
        return decoder
    }
}
