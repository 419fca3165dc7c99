import GatewayCore

/// Settings of the `example.wordfilter` stage.
///
/// | key | type | default | constraint |
/// |---|---|---|---|
/// | `words` | [string] | required | 1...10000 words, each letters, digits and `_` only; matched whole-word and case-insensitively |
/// | `action` | string | `mask` | `mask` (replace each letter of a match with `replacement`), `reject` (refuse with `x_word_filter`) or `flag` (set the envelope attribute `flagged: true` and let it through) |
/// | `replacement` | string | `*` | exactly one character |
public struct WordFilterSettings: Codable, Sendable {
    public enum Action: String, Codable, Sendable, CaseIterable {
        case mask, reject, flag
    }

    public var words: [String]
    public var action: Action
    public var replacement: Character

    enum CodingKeys: String, CodingKey { case words, action, replacement }

    public init(words: [String], action: Action = .mask, replacement: Character = "*") {
        self.words = words
        self.action = action
        self.replacement = replacement
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        words = try c.decode([String].self, forKey: .words)
        guard (1...10_000).contains(words.count) else {
            throw DecodingError.dataCorruptedError(forKey: .words, in: c, debugDescription: "must list 1...10000 words (was \(words.count))")
        }
        if let bad = words.first(where: { $0.isEmpty || !$0.allSatisfy(WordFilter.isWordCharacter) }) {
            throw DecodingError.dataCorruptedError(
                forKey: .words, in: c, debugDescription: "'\(bad)' is not a single word: use letters, digits and '_' only")
        }
        let actionName = try c.decodeIfPresent(String.self, forKey: .action) ?? Action.mask.rawValue
        guard let action = Action(rawValue: actionName) else {
            throw DecodingError.dataCorruptedError(
                forKey: .action, in: c, debugDescription: "must be one of mask, reject, flag (was '\(actionName)')")
        }
        self.action = action
        let replacement = try c.decodeIfPresent(String.self, forKey: .replacement) ?? "*"
        guard replacement.count == 1, let character = replacement.first else {
            throw DecodingError.dataCorruptedError(
                forKey: .replacement, in: c, debugDescription: "must be exactly one character (was '\(replacement)')")
        }
        self.replacement = character
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(words, forKey: .words)
        try c.encode(action, forKey: .action)
        try c.encode(String(replacement), forKey: .replacement)
    }
}
