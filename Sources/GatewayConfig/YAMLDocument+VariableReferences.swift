extension YAMLDocument {
    /// Characters that YAML reads as structure in places where `${VAR:-default}` is meant as
    /// plain text: the braces and commas of flow mappings (`{ token: ${ADMIN_TOKEN:-change-me} }`
    /// would otherwise end the mapping at the reference's `}`), `:` and `#` in a default.
    /// None of them starts an escape in a quoted scalar, so masking them there is harmless too.
    private static let maskedCharacters: [Unicode.Scalar] = ["{", "}", "[", "]", ",", ":", "#"]
    /// Private-use code points standing in for them, one for one, so that every line and
    /// column stays where it was.
    private static let firstMask: UInt32 = 0xE000

    /// Masks the structural characters inside every `${…}` on one line, so that the parser
    /// keeps the reference in its scalar; `unmask` puts them back in the parsed text. Returns
    /// the text unchanged when it has no reference, or already uses the private-use code
    /// points (then nothing could be told apart).
    static func maskVariableReferences(_ text: String) -> String {
        guard text.contains("${") else { return text }
        let maskRange = firstMask..<(firstMask + UInt32(maskedCharacters.count))
        guard !text.unicodeScalars.contains(where: { maskRange.contains($0.value) }) else { return text }
        var output = String.UnicodeScalarView()
        var scalars = text.unicodeScalars[...]
        while let dollar = scalars.firstIndex(of: "$") {
            output.append(contentsOf: scalars[..<dollar])
            let afterDollar = scalars[scalars.index(after: dollar)...]
            guard afterDollar.first == "{" else {
                output.append("$")
                scalars = afterDollar
                continue
            }
            let body = afterDollar.dropFirst()
            guard let close = body.firstIndex(where: { $0 == "}" || $0 == "\n" }), body[close] == "}" else {
                // No `}` on this line: left as written, for substitution to report.
                output.append("$")
                scalars = afterDollar
                continue
            }
            output.append("$")
            output.append(mask("{"))
            for scalar in body[..<close] { output.append(mask(scalar)) }
            output.append(mask("}"))
            scalars = body[body.index(after: close)...]
        }
        output.append(contentsOf: scalars)
        return String(output)
    }

    /// The parsed text of a scalar or key with masked characters restored.
    static func unmask(_ text: String) -> String {
        let maskRange = firstMask..<(firstMask + UInt32(maskedCharacters.count))
        guard text.unicodeScalars.contains(where: { maskRange.contains($0.value) }) else { return text }
        var output = String.UnicodeScalarView()
        for scalar in text.unicodeScalars {
            if maskRange.contains(scalar.value) {
                output.append(maskedCharacters[Int(scalar.value - firstMask)])
            } else {
                output.append(scalar)
            }
        }
        return String(output)
    }

    private static func mask(_ scalar: Unicode.Scalar) -> Unicode.Scalar {
        guard let index = maskedCharacters.firstIndex(of: scalar),
              let masked = Unicode.Scalar(firstMask + UInt32(index))
        else { return scalar }
        return masked
    }
}
