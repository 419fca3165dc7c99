/// Appends compact JSON to a byte array.
///
/// Server frames are written with this rather than `JSONEncoder`: the hot path writes a
/// `message` frame per recipient, and building it from pre-encoded parts avoids re-encoding
/// the body for every delivery.
public struct JSONWriter: Sendable {
    public var bytes: [UInt8]

    public init(capacity: Int = 256) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    @inline(__always) public mutating func raw(_ text: StaticString) {
        bytes.append(contentsOf: UnsafeBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount))
    }

    @inline(__always) public mutating func raw(_ other: [UInt8]) {
        bytes.append(contentsOf: other)
    }

    public mutating func int(_ value: Int64) {
        if value == 0 {
            bytes.append(UInt8(ascii: "0"))
            return
        }
        var magnitude = value.magnitude
        if value < 0 { bytes.append(UInt8(ascii: "-")) }
        var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                     UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) =
            (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        var count = 0
        withUnsafeMutableBytes(of: &digits) { buffer in
            while magnitude > 0 {
                buffer[count] = UInt8(ascii: "0") + UInt8(magnitude % 10)
                magnitude /= 10
                count += 1
            }
            for position in stride(from: count - 1, through: 0, by: -1) {
                bytes.append(buffer[position])
            }
        }
    }

    public mutating func int(_ value: Int) { int(Int64(value)) }

    /// A 64-bit id as a decimal string (`"123"`), as PROTOCOL.md requires for `id`.
    public mutating func idString(_ value: UInt64) {
        bytes.append(UInt8(ascii: "\""))
        bytes.append(contentsOf: String(value).utf8)
        bytes.append(UInt8(ascii: "\""))
    }

    public mutating func bool(_ value: Bool) {
        if value { raw("true") } else { raw("false") }
    }

    public mutating func string(_ value: String) {
        bytes.append(UInt8(ascii: "\""))
        var needsEscape = false
        for byte in value.utf8 where byte < 0x20 || byte == 0x22 || byte == 0x5C {
            needsEscape = true
            break
        }
        if !needsEscape {
            bytes.append(contentsOf: value.utf8)
        } else {
            for byte in value.utf8 {
                switch byte {
                case 0x22: raw("\\\"")
                case 0x5C: raw("\\\\")
                case 0x0A: raw("\\n")
                case 0x0D: raw("\\r")
                case 0x09: raw("\\t")
                case 0x08: raw("\\b")
                case 0x0C: raw("\\f")
                case 0..<0x20:
                    raw("\\u00")
                    let hex: [UInt8] = Array("0123456789abcdef".utf8)
                    bytes.append(hex[Int(byte >> 4)])
                    bytes.append(hex[Int(byte & 0xF)])
                default: bytes.append(byte)
                }
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }

    public mutating func value(_ value: JSONValue) {
        switch value {
        case .null: raw("null")
        case .bool(let b): bool(b)
        case .number(let text): bytes.append(contentsOf: text.utf8)
        case .string(let s): string(s)
        case .array(let elements):
            bytes.append(UInt8(ascii: "["))
            for (offset, element) in elements.enumerated() {
                if offset > 0 { bytes.append(UInt8(ascii: ",")) }
                self.value(element)
            }
            bytes.append(UInt8(ascii: "]"))
        case .object(let object):
            bytes.append(UInt8(ascii: "{"))
            for (offset, member) in object.members.enumerated() {
                if offset > 0 { bytes.append(UInt8(ascii: ",")) }
                string(member.key)
                bytes.append(UInt8(ascii: ":"))
                self.value(member.value)
            }
            bytes.append(UInt8(ascii: "}"))
        }
    }

    /// Writes `"key":` (with a leading comma unless it is the first member).
    public mutating func key(_ key: StaticString, first: Bool = false) {
        if !first { bytes.append(UInt8(ascii: ",")) }
        bytes.append(UInt8(ascii: "\""))
        raw(key)
        raw("\":")
    }
}

extension JSONWriter {
    /// How many bytes `string(_:)` writes for `text`: its quotes, and the escapes it writes
    /// (`\"`, `\\`, `\n`, `\r`, `\t`, `\b`, `\f` take 2 bytes, other control characters 6).
    public static func encodedLength(ofString text: String) -> Int {
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

extension JSONValue {
    /// The length of `jsonBytes`, counted without writing them; once past `limit` the count may
    /// stop early at some larger value. For a bound on a value that is serialized later anyway.
    public func jsonByteCount(stoppingAbove limit: Int = .max) -> Int {
        var total = 0
        addJSONByteCount(to: &total, limit: limit)
        return total
    }

    private func addJSONByteCount(to total: inout Int, limit: Int) {
        if total > limit { return }
        switch self {
        case .null: total += 4
        case .bool(let flag): total += flag ? 4 : 5
        case .number(let text): total += text.utf8.count
        case .string(let text): total += JSONWriter.encodedLength(ofString: text)
        case .array(let elements):
            total += 2 + max(0, elements.count - 1)
            for element in elements {
                element.addJSONByteCount(to: &total, limit: limit)
                if total > limit { return }
            }
        case .object(let object):
            total += 2 + max(0, object.members.count - 1)
            for member in object.members {
                total += JSONWriter.encodedLength(ofString: member.key) + 1
                member.value.addJSONByteCount(to: &total, limit: limit)
                if total > limit { return }
            }
        }
    }

    /// Compact JSON text of this value.
    public var jsonText: String {
        var writer = JSONWriter()
        writer.value(self)
        return String(decoding: writer.bytes, as: UTF8.self)
    }

    public var jsonBytes: [UInt8] {
        var writer = JSONWriter()
        writer.value(self)
        return writer.bytes
    }
}
