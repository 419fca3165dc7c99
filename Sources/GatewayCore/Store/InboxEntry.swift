/// One entry of a user's inbox.
public struct InboxEntry: Sendable, Hashable {
    public var seq: Int64
    public var message: StoredMessage

    public init(seq: Int64, message: StoredMessage) {
        self.seq = seq
        self.message = message
    }
}
