import GatewayCore

/// An example custom stage: finds listed words in a message's text and masks them, refuses the
/// message (`x_word_filter`), or flags it for later stages (`attributes["flagged"] = true`).
///
/// The text is the body when the body is a string, or the string field `text` of an object
/// body; other bodies pass unchanged. Its kind carries an owner prefix, as custom kinds must.
public struct WordFilterStage: Stage {
    public let settings: WordFilterSettings
    let filter: WordFilter

    public init(settings: WordFilterSettings) {
        self.settings = settings
        filter = WordFilter(words: settings.words)
    }

    /// The code a refused message gets: `x_word_filter`.
    public static let rejectCode = GatewayError.Code.custom("word_filter")!

    public func process(_ envelope: inout Envelope, context: StageContext) async throws -> StageOutcome {
        guard let text = Self.text(of: envelope.body) else { return .continue }
        switch settings.action {
        case .mask:
            if let masked = filter.masked(text, replacement: settings.replacement) {
                envelope.body = Self.body(envelope.body, replacingTextWith: masked)
            }
        case .reject:
            if filter.contains(in: text) {
                return .reject(GatewayError(Self.rejectCode, "the message contains a word this chat does not allow"))
            }
        case .flag:
            if filter.contains(in: text) {
                envelope.attributes["flagged"] = true
            }
        }
        return .continue
    }

    /// The text a body carries: the body itself or an object body's `text` string.
    static func text(of body: JSONValue?) -> String? {
        switch body {
        case .string(let text)?: text
        case .object(let object)?: object["text"]?.stringValue
        default: nil
        }
    }

    static func body(_ body: JSONValue?, replacingTextWith text: String) -> JSONValue? {
        guard case .object(var object)? = body else { return .string(text) }
        object["text"] = .string(text)
        return .object(object)
    }

    public static let factory = StageFactory(kind: "example.wordfilter", settings: WordFilterSettings.self) { settings, _ in
        WordFilterStage(settings: settings)
    }
}
