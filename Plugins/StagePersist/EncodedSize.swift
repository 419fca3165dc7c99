import GatewayCore

/// The length of a value's compact JSON (as `JSONWriter` writes it, byte for byte) counted
/// without writing it: the `persist` stage bounds the body with it, and the body is then
/// serialized once, by the gateway, for the store.
enum EncodedSize {
    /// The byte count of `value.jsonBytes`, or some count above `limit` as soon as it is
    /// known to exceed it.
    static func of(_ value: JSONValue, limit: Int) -> Int {
        var total = 0
        add(value, to: &total, limit: limit)
        return total
    }

    /// Adds the size of `value` to `total`; stops early once `total` is past `limit`.
    private static func add(_ value: JSONValue, to total: inout Int, limit: Int) {
        if total > limit { return }
        switch value {
        case .null: total += 4
        case .bool(let flag): total += flag ? 4 : 5
        case .number(let text): total += text.utf8.count
        case .string(let text): total += string(text)
        case .array(let elements):
            total += 2 + max(0, elements.count - 1)
            for element in elements {
                add(element, to: &total, limit: limit)
                if total > limit { return }
            }
        case .object(let object):
            let members = object.members
            total += 2 + max(0, members.count - 1)
            for member in members {
                total += string(member.key) + 1
                add(member.value, to: &total, limit: limit)
                if total > limit { return }
            }
        }
    }

    /// A string with its quotes and escapes: `\"`, `\\`, `\n`, `\r`, `\t`, `\b`, `\f` take 2
    /// bytes, other control characters 6 (`\u00XX`).
    static func string(_ text: String) -> Int {
        var count = 2
        for byte in text.utf8 {
            switch byte {
            case 0x22, 0x5C, 0x0A, 0x0D, 0x09, 0x08, 0x0C: count += 2
            case 0..<0x20: count += 6
            default: count += 1
            }
        }
        return count
    }
}
