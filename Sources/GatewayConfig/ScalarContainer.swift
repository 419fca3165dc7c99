/// The single-value container: decodes the node itself (a scalar, or anything a wrapper type
/// passes through).
struct ScalarContainer: SingleValueDecodingContainer {
    let node: ConfigNode
    let codingPath: [any CodingKey]
    let run: DecodingRun

    func decodeNil() -> Bool { node.isNull }

    private func decodeAny<T: Decodable>(_ type: T.Type) throws -> T {
        try run.decodeValue(type, from: node, at: codingPath)
    }

    func decode<T: Decodable>(_ type: T.Type) throws -> T { try decodeAny(type) }
    func decode(_ type: Bool.Type) throws -> Bool { try decodeAny(type) }
    func decode(_ type: String.Type) throws -> String { try decodeAny(type) }
    func decode(_ type: Double.Type) throws -> Double { try decodeAny(type) }
    func decode(_ type: Float.Type) throws -> Float { try decodeAny(type) }
    func decode(_ type: Int.Type) throws -> Int { try decodeAny(type) }
    func decode(_ type: Int8.Type) throws -> Int8 { try decodeAny(type) }
    func decode(_ type: Int16.Type) throws -> Int16 { try decodeAny(type) }
    func decode(_ type: Int32.Type) throws -> Int32 { try decodeAny(type) }
    func decode(_ type: Int64.Type) throws -> Int64 { try decodeAny(type) }
    func decode(_ type: UInt.Type) throws -> UInt { try decodeAny(type) }
    func decode(_ type: UInt8.Type) throws -> UInt8 { try decodeAny(type) }
    func decode(_ type: UInt16.Type) throws -> UInt16 { try decodeAny(type) }
    func decode(_ type: UInt32.Type) throws -> UInt32 { try decodeAny(type) }
    func decode(_ type: UInt64.Type) throws -> UInt64 { try decodeAny(type) }
}
