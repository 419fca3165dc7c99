/// A message on its way into the store, with the inboxes it goes to.
///
/// A class, and immutable: it passes from the session to the committer, the store and delivery,
/// and each of those moves is one retain, where a struct of strings and arrays retained every
/// field.
public final class PendingMessage: Sendable {
    public let message: StoredMessage
    /// Users whose inbox gets an entry (the sender included); each appears once.
    public let inboxes: [String]
    /// The session that sent it, which gets the `ack` instead of a `message` frame.
    public let originSession: String?
    /// Fanout-on-read (a group above the `fanout` stage's threshold): the members, sender
    /// excluded, who get the message live without a `seq` and in their inbox only when they next
    /// read it (`inbox`, `inboxHead`). Non-empty makes the store keep a group message as
    /// fanout-on-read; `inboxes` then holds only the sender. See docs/GROUPS.md.
    public let liveOnly: [String]
    /// Answers the sender, called by the committer with what the store did (after the batch's
    /// deliveries, before the commit's waiter resumes); nil when the waiter answers.
    public let answer: (@Sendable (Result<CommitOutcome, GatewayError>) -> Void)?

    public init(
        message: StoredMessage, inboxes: [String], originSession: String? = nil, liveOnly: [String] = [],
        answer: (@Sendable (Result<CommitOutcome, GatewayError>) -> Void)? = nil
    ) {
        self.message = message
        self.inboxes = inboxes
        self.originSession = originSession
        self.liveOnly = liveOnly
        self.answer = answer
    }

    /// The same, with the message's id replaced.
    public func with(id: UInt64) -> PendingMessage {
        var message = message
        message.id = id
        return PendingMessage(message: message, inboxes: inboxes, originSession: originSession, liveOnly: liveOnly, answer: answer)
    }

    /// Whether the message goes to its group's members by fanout-on-read.
    public var isFanoutOnRead: Bool {
        if case .group = message.to { !liveOnly.isEmpty } else { false }
    }
}
