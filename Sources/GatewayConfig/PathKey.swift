/// One step of a YAML path: a mapping key or a sequence index.
///
/// The decoder builds coding paths from these; unlike `any CodingKey` they are `Sendable`, so a
/// settings source can keep the path of its block until a stage factory decodes it.
enum PathKey: CodingKey, Sendable, Hashable {
    case key(String)
    case index(Int)

    init(stringValue: String) { self = .key(stringValue) }
    init(intValue: Int) { self = .index(intValue) }

    /// Converts a key from anyone's coding path. An index is recognised by its conventional
    /// string form (`Index 3`, as the standard library and Foundation write it); any other key
    /// is a mapping key, even when its enum has an integer raw value.
    init(_ key: any CodingKey) {
        if let own = key as? PathKey {
            self = own
        } else if let index = key.intValue, key.stringValue == "Index \(index)" || key.stringValue == "\(index)" {
            self = .index(index)
        } else {
            self = .key(key.stringValue)
        }
    }

    var stringValue: String {
        switch self {
        case .key(let name): name
        case .index(let index): "Index \(index)"
        }
    }

    var intValue: Int? {
        switch self {
        case .key: nil
        case .index(let index): index
        }
    }

    /// `pipeline[2].settings.level`.
    static func render(_ path: [PathKey]) -> String {
        var text = ""
        for step in path {
            switch step {
            case .key(let name):
                if !text.isEmpty { text += "." }
                text += name
            case .index(let index):
                text += "[\(index)]"
            }
        }
        return text
    }

    static func render(_ path: [any CodingKey]) -> String {
        render(path.map(PathKey.init))
    }
}
