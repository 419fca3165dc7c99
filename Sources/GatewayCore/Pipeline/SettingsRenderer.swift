/// Renders an `Encodable` settings value as a `JSONValue` for `/admin/pipeline`.
///
/// A small `Encoder` of our own keeps the core free of Foundation's JSON coders; `Secret`
/// encodes itself as `<redacted>`, so secrets never leave the process.
enum SettingsRenderer {
    static func render(_ value: some Encodable) -> JSONValue {
        let box = Box()
        let encoder = RenderEncoder(box: box, path: [])
        do {
            try value.encode(to: encoder)
        } catch {
            return .string("<\(error)>")
        }
        return box.value?.json ?? .object(JSONObject())
    }

    /// A mutable tree built while encoding.
    final class Node {
        enum Storage { case value(JSONValue), object([(String, Node)]), array([Node]) }
        var storage: Storage
        init(_ storage: Storage) { self.storage = storage }

        var json: JSONValue {
            switch storage {
            case .value(let v): v
            case .object(let members): .object(JSONObject(members.map { (key: $0.0, value: $0.1.json) }))
            case .array(let nodes): .array(nodes.map(\.json))
            }
        }
    }

    final class Box {
        var value: Node?
    }

    struct RenderEncoder: Encoder {
        let box: Box
        let path: [any CodingKey]
        var codingPath: [any CodingKey] { path }
        var userInfo: [CodingUserInfoKey: Any] { [:] }

        func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
            let node: Node
            if let existing = box.value, case .object = existing.storage {
                node = existing
            } else {
                node = Node(.object([]))
                box.value = node
            }
            return KeyedEncodingContainer(Keyed<Key>(node: node, path: path))
        }

        func unkeyedContainer() -> any UnkeyedEncodingContainer {
            let node = Node(.array([]))
            box.value = node
            return Unkeyed(node: node, path: path)
        }

        func singleValueContainer() -> any SingleValueEncodingContainer {
            Single(box: box, path: path)
        }
    }

    static func encodeChild(_ value: some Encodable, path: [any CodingKey]) throws -> Node {
        let box = Box()
        try value.encode(to: RenderEncoder(box: box, path: path))
        return box.value ?? Node(.value(.null))
    }

    static func primitive(_ value: some Encodable) -> JSONValue? {
        switch value {
        case let v as String: .string(v)
        case let v as Bool: .bool(v)
        case let v as Int: .number(String(v))
        case let v as Int64: .number(String(v))
        case let v as UInt64: .number(String(v))
        case let v as UInt32: .number(String(v))
        case let v as Int32: .number(String(v))
        case let v as UInt16: .number(String(v))
        case let v as UInt8: .number(String(v))
        case let v as Double: .number(v.isFinite ? String(v) : "0")
        case let v as Float: .number(v.isFinite ? String(v) : "0")
        default: nil
        }
    }

    struct Keyed<Key: CodingKey>: KeyedEncodingContainerProtocol {
        let node: Node
        let path: [any CodingKey]
        var codingPath: [any CodingKey] { path }

        func set(_ key: Key, _ child: Node) {
            guard case .object(var members) = node.storage else { return }
            members.removeAll { $0.0 == key.stringValue }
            members.append((key.stringValue, child))
            node.storage = .object(members)
        }

        mutating func encodeNil(forKey key: Key) throws { set(key, Node(.value(.null))) }
        mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws {
            if let p = SettingsRenderer.primitive(value) {
                set(key, Node(.value(p)))
            } else {
                set(key, try SettingsRenderer.encodeChild(value, path: path + [key]))
            }
        }
        mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type, forKey key: Key) -> KeyedEncodingContainer<NestedKey> {
            let child = Node(.object([]))
            set(key, child)
            return KeyedEncodingContainer(Keyed<NestedKey>(node: child, path: path + [key]))
        }
        mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer {
            let child = Node(.array([]))
            set(key, child)
            return Unkeyed(node: child, path: path + [key])
        }
        mutating func superEncoder() -> any Encoder { RenderEncoder(box: Box(), path: path) }
        mutating func superEncoder(forKey key: Key) -> any Encoder { RenderEncoder(box: Box(), path: path + [key]) }
    }

    struct Unkeyed: UnkeyedEncodingContainer {
        let node: Node
        let path: [any CodingKey]
        var codingPath: [any CodingKey] { path }
        var count: Int {
            if case .array(let nodes) = node.storage { return nodes.count }
            return 0
        }

        func append(_ child: Node) {
            guard case .array(var nodes) = node.storage else { return }
            nodes.append(child)
            node.storage = .array(nodes)
        }

        mutating func encodeNil() throws { append(Node(.value(.null))) }
        mutating func encode<T: Encodable>(_ value: T) throws {
            if let p = SettingsRenderer.primitive(value) {
                append(Node(.value(p)))
            } else {
                append(try SettingsRenderer.encodeChild(value, path: path))
            }
        }
        mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type) -> KeyedEncodingContainer<NestedKey> {
            let child = Node(.object([]))
            append(child)
            return KeyedEncodingContainer(Keyed<NestedKey>(node: child, path: path))
        }
        mutating func nestedUnkeyedContainer() -> any UnkeyedEncodingContainer {
            let child = Node(.array([]))
            append(child)
            return Unkeyed(node: child, path: path)
        }
        mutating func superEncoder() -> any Encoder { RenderEncoder(box: Box(), path: path) }
    }

    struct Single: SingleValueEncodingContainer {
        let box: Box
        let path: [any CodingKey]
        var codingPath: [any CodingKey] { path }

        mutating func encodeNil() throws { box.value = Node(.value(.null)) }
        mutating func encode<T: Encodable>(_ value: T) throws {
            if let p = SettingsRenderer.primitive(value) {
                box.value = Node(.value(p))
            } else {
                box.value = try SettingsRenderer.encodeChild(value, path: path)
            }
        }
    }
}
