/// Replaces `${VAR}` and `${VAR:-default}` in a scalar with values from the environment.
///
/// As in the shell, `:-` also applies when the variable is set but empty. `$${` writes a
/// literal `${`. A default runs to the first `}`, so it cannot contain one.
enum EnvironmentSubstitution {
    enum Failure: Error, Equatable {
        case unset(String)
        case invalidName(String)
        case unterminated

        var message: String {
            switch self {
            case .unset(let name):
                "environment variable '\(name)' is not set (write ${\(name):-default} to give a default)"
            case .invalidName(let name):
                "'${\(name)}' does not name an environment variable (letters, digits and '_', not starting with a digit)"
            case .unterminated:
                "'${' without a closing '}' (write '$${' for a literal '${')"
            }
        }
    }

    static func apply(_ text: String, environment: [String: String]) throws(Failure) -> String {
        // Most scalars have nothing to substitute.
        guard text.contains("${") else { return text }
        var result = ""
        var rest = text[...]
        while let open = rest.firstRange(of: "${") {
            let before = rest[..<open.lowerBound]
            let afterOpen = rest[open.upperBound...]
            if before.hasSuffix("$") {
                result += before.dropLast()
                result += "${"
                rest = afterOpen
                continue
            }
            result += before
            guard let close = afterOpen.firstIndex(of: "}") else { throw .unterminated }
            let body = afterOpen[..<close]
            let name: Substring
            let fallback: Substring?
            if let separator = body.firstRange(of: ":-") {
                name = body[..<separator.lowerBound]
                fallback = body[separator.upperBound...]
            } else {
                name = body
                fallback = nil
            }
            guard isValidName(name) else { throw .invalidName(String(body)) }
            if let value = environment[String(name)], !(value.isEmpty && fallback != nil) {
                result += value
            } else if let fallback {
                result += fallback
            } else {
                throw .unset(String(name))
            }
            rest = afterOpen[afterOpen.index(after: close)...]
        }
        result += rest
        return result
    }

    static func isValidName(_ name: Substring) -> Bool {
        guard let first = name.utf8.first, !(UInt8(ascii: "0")...UInt8(ascii: "9")).contains(first) else { return false }
        return name.utf8.allSatisfy { byte in
            (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte)
                || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
                || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
                || byte == UInt8(ascii: "_")
        }
    }
}
