/// Finds listed words in text: whole words (runs of letters, digits and `_`), compared
/// case-insensitively.
struct WordFilter: Sendable {
    /// The listed words, lowercased.
    let words: Set<String>
    /// The longest listed word in characters: longer runs cannot match and are not lowercased.
    let longest: Int

    init(words: [String]) {
        self.words = Set(words.map { $0.lowercased() })
        longest = words.map(\.count).max() ?? 0
    }

    static func isWordCharacter(_ character: Character) -> Bool {
        character.isLetter || character.isNumber || character == "_"
    }

    /// The ranges of listed words in `text`, in order; with `first`, at most one.
    func matches(in text: String, first: Bool = false) -> [Range<String.Index>] {
        var found: [Range<String.Index>] = []
        var start = text.startIndex
        while start < text.endIndex {
            guard Self.isWordCharacter(text[start]) else {
                start = text.index(after: start)
                continue
            }
            var end = start
            var length = 0
            while end < text.endIndex, Self.isWordCharacter(text[end]) {
                end = text.index(after: end)
                length += 1
            }
            if length <= longest, words.contains(text[start..<end].lowercased()) {
                found.append(start..<end)
                if first { break }
            }
            start = end
        }
        return found
    }

    func contains(in text: String) -> Bool { !matches(in: text, first: true).isEmpty }

    /// `text` with every character of each listed word replaced, or nil when nothing matched.
    func masked(_ text: String, replacement: Character) -> String? {
        let ranges = matches(in: text)
        guard !ranges.isEmpty else { return nil }
        var result = ""
        result.reserveCapacity(text.utf8.count)
        var copied = text.startIndex
        for range in ranges {
            result += text[copied..<range.lowerBound]
            result += String(repeating: replacement, count: text[range].count)
            copied = range.upperBound
        }
        result += text[copied...]
        return result
    }
}
