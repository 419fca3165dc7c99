/// Reading scalars as `String`, `Bool`, integers and floating-point numbers.
///
/// Any scalar decodes as a `String` (its text: `port: "8080"` and `secret: 12345` alike), and a
/// scalar whose text reads as a number decodes as one whether quoted or not; YAML's own typing
/// of plain scalars (`yes` as a boolean, `0777` as octal) is not used, so a value means what it
/// looks like.
extension DecodingRun {
    /// Decodes `type` if it is one of the scalar types, nil otherwise.
    func decodeScalar<T>(_ type: T.Type, from node: ConfigNode, at path: [any CodingKey]) throws -> T? {
        if T.self == String.self {
            return try scalarText(node, at: path, expecting: "a string", type) as? T
        }
        if T.self == Bool.self {
            return try decodeBool(from: node, at: path) as? T
        }
        if T.self == Double.self {
            return try decodeFloatingPoint(Double.self, from: node, at: path) as? T
        }
        if T.self == Float.self {
            return try decodeFloatingPoint(Float.self, from: node, at: path) as? T
        }
        if let integerType = T.self as? any FixedWidthInteger.Type {
            return try decodeInteger(integerType, from: node, at: path) as? T
        }
        return nil
    }

    /// The substituted text of a scalar node; a null, a mapping or a list is an error naming
    /// what was `expecting`.
    func scalarText(_ node: ConfigNode, at path: [any CodingKey], expecting: String, _ type: Any.Type) throws -> String {
        guard case .scalar(let scalar) = node else {
            throw DecodingError.typeMismatch(type, .init(codingPath: path, debugDescription: "expected \(expecting), got \(node.summary)"))
        }
        if scalar.isNull {
            throw DecodingError.valueNotFound(type, .init(codingPath: path, debugDescription: "expected \(expecting), got null"))
        }
        return try text(of: scalar, at: path)
    }

    func decodeBool(from node: ConfigNode, at path: [any CodingKey]) throws -> Bool {
        let text = try scalarText(node, at: path, expecting: "true or false", Bool.self)
        switch text {
        case "true", "True", "TRUE": return true
        case "false", "False", "FALSE": return false
        default:
            throw DecodingError.typeMismatch(Bool.self, .init(codingPath: path, debugDescription: "expected true or false, got \(ConfigNode.quote(text))"))
        }
    }

    func decodeInteger<I: FixedWidthInteger>(_ type: I.Type, from node: ConfigNode, at path: [any CodingKey]) throws -> I {
        let text = try scalarText(node, at: path, expecting: "an integer", type)
        switch Self.parseInteger(text, as: type) {
        case .value(let value):
            return value
        case .invalid:
            throw DecodingError.typeMismatch(type, .init(codingPath: path, debugDescription: "expected an integer, got \(ConfigNode.quote(text))"))
        case .outOfRange:
            throw DecodingError.dataCorrupted(.init(
                codingPath: path, debugDescription: "\(ConfigNode.quote(text)) is out of range for \(I.self) (\(I.min)...\(I.max))"
            ))
        }
    }

    func decodeFloatingPoint<F: BinaryFloatingPoint & LosslessStringConvertible>(_ type: F.Type, from node: ConfigNode, at path: [any CodingKey]) throws -> F {
        let text = try scalarText(node, at: path, expecting: "a number", type)
        guard let value = Self.parseFloatingPoint(text, as: type) else {
            throw DecodingError.typeMismatch(type, .init(codingPath: path, debugDescription: "expected a number, got \(ConfigNode.quote(text))"))
        }
        return value
    }

    enum IntegerParse<I> {
        case value(I)
        case invalid
        case outOfRange
    }

    /// Decimal, or `0x`/`0o`/`0b` with a radix; an optional sign; `_` between digits
    /// (`26_214_400`).
    static func parseInteger<I: FixedWidthInteger>(_ text: String, as type: I.Type) -> IntegerParse<I> {
        var digits = Substring(text)
        var sign = ""
        if let first = digits.first, first == "+" || first == "-" {
            sign = first == "-" ? "-" : ""
            digits = digits.dropFirst()
        }
        var radix = 10
        for (prefix, prefixRadix) in [("0x", 16), ("0X", 16), ("0o", 8), ("0b", 2)] where digits.hasPrefix(prefix) {
            radix = prefixRadix
            digits = digits.dropFirst(2)
            break
        }
        guard let first = digits.first, let last = digits.last, first != "_", last != "_" else { return .invalid }
        let cleaned = digits.filter { $0 != "_" }
        let allDigits = cleaned.allSatisfy { character in
            character.isASCII && (character.hexDigitValue.map { $0 < radix } ?? false)
        }
        guard allDigits else { return .invalid }
        guard let value = I(sign + cleaned, radix: radix) else { return .outOfRange }
        return .value(value)
    }

    /// Decimal and exponent notation, `_` between digits, and YAML's `.inf`, `-.inf`, `.nan`.
    static func parseFloatingPoint<F: BinaryFloatingPoint & LosslessStringConvertible>(_ text: String, as type: F.Type) -> F? {
        switch text {
        case ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF": return .infinity
        case "-.inf", "-.Inf", "-.INF": return -.infinity
        case ".nan", ".NaN", ".NAN": return .nan
        default: break
        }
        let cleaned = text.filter { $0 != "_" }
        // Swift's parser also takes `inf`, `nan` and hexadecimal floats; YAML writes none of these.
        let allowed = cleaned.allSatisfy { ("0"..."9").contains($0) || "+-.eE".contains($0) }
        guard allowed, cleaned.contains(where: { ("0"..."9").contains($0) }), !text.hasPrefix("_"), !text.hasSuffix("_"),
              let value = F(cleaned), value.isFinite
        else { return nil }
        return value
    }
}
