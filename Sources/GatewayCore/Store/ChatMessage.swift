/// A message as the store keeps it and the gateway delivers it.
///
/// The body and attachments are kept as JSON text, encoded once when the message is accepted,
/// so sync, history and every live delivery splice them into frames without re-encoding.
public struct StoredMessage: Sendable, Hashable {
    public var id: UInt64
    public var from: String
    public var to: Address
    public var timestamp: Int64
    public var clientMsgID: String
    /// The body's JSON text.
    public var body: [UInt8]
    /// The `attachments` array's JSON text, when the message has attachments.
    public var attachments: [UInt8]?

    public init(id: UInt64, from: String, to: Address, timestamp: Int64, clientMsgID: String, body: [UInt8], attachments: [UInt8]? = nil) {
        self.id = id
        self.from = from
        self.to = to
        self.timestamp = timestamp
        self.clientMsgID = clientMsgID
        self.body = body
        self.attachments = attachments
    }

    /// The conversation key this message belongs to (see `Address.conversationKey`).
    public var conversation: String { to.conversationKey(sender: from) }
}

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

/// What the store did with one pending message.
public enum CommitOutcome: Sendable, Hashable {
    /// Stored now; `seqs` holds the inbox seq given to each user, in the order of `inboxes`. A
    /// user of `inboxes` missing from `seqs` gets the message by fanout-on-read: the store held
    /// their entry back so that it lands after the group's earlier messages still waiting for
    /// them (docs/GROUPS.md); they get it live without a seq.
    case stored(StoredMessage, seqs: [InboxSeq])
    /// The sender had already stored this `client_msg_id`: the original message and the
    /// sender's own seq of it (0 if the sender had no inbox entry).
    case duplicate(StoredMessage, senderSeq: Int64)
}

public struct InboxSeq: Sendable, Hashable {
    public var user: String
    public var seq: Int64

    public init(user: String, seq: Int64) {
        self.user = user
        self.seq = seq
    }
}

/// One entry of a user's inbox.
public struct InboxEntry: Sendable, Hashable {
    public var seq: Int64
    public var message: StoredMessage

    public init(seq: Int64, message: StoredMessage) {
        self.seq = seq
        self.message = message
    }
}
