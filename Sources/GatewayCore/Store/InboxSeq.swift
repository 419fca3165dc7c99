public struct InboxSeq: Sendable, Hashable {
    public var user: String
    public var seq: Int64

    public init(user: String, seq: Int64) {
        self.user = user
        self.seq = seq
    }
}
