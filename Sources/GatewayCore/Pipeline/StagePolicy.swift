/// What the runner does when a stage fails: its deadline (`timeout_ms`) and what a failure
/// means for the frame (`on_error`). Set per pipeline entry, beside `on:`; a factory may give
/// its kind defaults (`BuiltStage.policy`), which the entry's keys override.
///
/// A failure is a `throw` from `process` or no outcome within `timeoutMs`. With `.reject`
/// the sender gets the thrown error's code (`internal` for a plain error) or `unavailable`
/// after a timeout; with `.continue` the frame goes on to the next stage as it was before the
/// failed stage (its changes are dropped). Either way the failure counts in the stage's
/// `errors`.
public struct StagePolicy: Sendable, Hashable {
    public enum OnError: String, Sendable, Hashable, Codable, CaseIterable {
        case reject
        case `continue`
    }

    /// How long `process` may take, in milliseconds; nil for no deadline (the default).
    public var timeoutMs: Int?
    public var onError: OnError

    public init(timeoutMs: Int? = nil, onError: OnError = .reject) {
        self.timeoutMs = timeoutMs
        self.onError = onError
    }

    /// The range `timeout_ms` must be in.
    public static let timeoutRange = 1...600_000

    /// No deadline; a failure rejects the frame.
    public static let `default` = StagePolicy()
}
