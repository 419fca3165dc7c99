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
