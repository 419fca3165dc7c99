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
