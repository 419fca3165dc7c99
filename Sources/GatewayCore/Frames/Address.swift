/// A conversation address: `{"user": "bob"}` for 1:1, `{"group": "g_42"}` for a group.
public enum Address: Sendable, Hashable, CustomStringConvertible {
    case user(String)
    case group(String)

    /// User and group ids: 1 to 64 characters of `[A-Za-z0-9_.@-]`.
    public static func isValidID(_ id: String) -> Bool {
        let utf8 = id.utf8
        guard !utf8.isEmpty, utf8.count <= 64 else { return false }
        return utf8.allSatisfy { byte in
            (byte >= 0x61 && byte <= 0x7A) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x30 && byte <= 0x39)
                || byte == 0x5F || byte == 0x2E || byte == 0x40 || byte == 0x2D
        }
    }

    /// Parses the JSON form `{"user": "bob"}` / `{"group": "g_42"}`.
    public init(json: JSONValue?, field: String) throws(GatewayError) {
        guard let object = json?.objectValue, object.count == 1 else {
            throw .badFrame("'\(field)' must be {\"user\": id} or {\"group\": id}")
        }
        let member = object.members[0]
        guard let id = member.value.stringValue, Address.isValidID(id) else {
            throw .badFrame("'\(field).\(member.key)' must be 1 to 64 characters of [A-Za-z0-9_.@-]")
        }
        switch member.key {
        case "user": self = .user(id)
        case "group": self = .group(id)
        default: throw .badFrame("'\(field)' must be {\"user\": id} or {\"group\": id}")
        }
    }

    /// Parses the path form `user:bob` / `group:g_42`.
    public init?(path: String) {
        guard let colon = path.firstIndex(of: ":") else { return nil }
        let kind = path[..<colon]
        let id = String(path[path.index(after: colon)...])
        guard Address.isValidID(id) else { return nil }
        switch kind {
        case "user": self = .user(id)
        case "group": self = .group(id)
        default: return nil
        }
    }

    public var id: String {
        switch self {
        case .user(let id), .group(let id): id
        }
    }

    public var json: JSONValue {
        switch self {
        case .user(let id): ["user": .string(id)]
        case .group(let id): ["group": .string(id)]
        }
    }

    public var description: String {
        switch self {
        case .user(let id): "user:\(id)"
        case .group(let id): "group:\(id)"
        }
    }

    /// The storage key of the conversation between `sender` and this address: for 1:1 the
    /// two user ids sorted (`u:alice|bob`), for a group `g:g_42`. Ids cannot contain `|`.
    public func conversationKey(sender: String) -> String {
        switch self {
        case .user(let peer):
            sender <= peer ? "u:\(sender)|\(peer)" : "u:\(peer)|\(sender)"
        case .group(let id):
            "g:\(id)"
        }
    }

    public func write(to writer: inout JSONWriter) {
        switch self {
        case .user(let id):
            writer.raw("{\"user\":")
            writer.string(id)
        case .group(let id):
            writer.raw("{\"group\":")
            writer.string(id)
        }
        writer.raw("}")
    }
}
