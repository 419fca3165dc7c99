/// Who sent a frame: the authenticated user on one device and session.
public struct Principal: Sendable, Hashable {
    public var user: String
    public var device: String
    public var session: String
    public var transport: TransportKind
    /// The peer's IP address, when the transport knows it (rate limits per IP use it).
    public var remoteAddress: String?

    public init(user: String, device: String, session: String, transport: TransportKind, remoteAddress: String? = nil) {
        self.user = user
        self.device = device
        self.session = session
        self.transport = transport
        self.remoteAddress = remoteAddress
    }
}

public enum TransportKind: String, Sendable, Hashable, Codable {
    case websocket
    case longpoll
    /// The stateless HTTP API (`POST /v1/messages`).
    case http
}

/// A frame on its way through the pipeline.
///
/// Stages read it and may change the fields marked *mutable*; the runner hands the same value
/// from stage to stage. For `send` frames, `to`, `body` and `clientMsgID` are set; `id` and
/// `timestamp` are stamped by the `id` stage, `persist` is set by the `persist` stage and
/// `recipients` by the `fanout` stage. For `typing` and `read`, `to` is the conversation.
public struct Envelope: Sendable {
    public let kind: FrameKind
    public let sender: Principal
    /// The client's `ref`, echoed in the reply.
    public let ref: String?
    /// The whole client frame, for custom fields a stage may read.
    public let frame: JSONObject

    /// The conversation (mutable: a stage may redirect, though few should).
    public var to: Address?
    /// The message body (mutable: a stage may rewrite it).
    public var body: JSONValue?
    public var clientMsgID: String?
    /// Attachments as sent (mutable: the media stage replaces inline data with media ids).
    public var attachments: [JSONValue]?

    /// The Snowflake id, once stamped.
    public var id: UInt64?
    /// Milliseconds since the Unix epoch; the time of arrival until the `id` stage stamps it.
    public var timestamp: Int64
    /// Set by the `persist` stage: the message is written to the store before the ack.
    public var persist: Bool = false
    /// Set by the `fanout` stage: the users whose inbox gets the message, sender included.
    public var recipients: [String]?
    /// Set by the `fanout` stage for a group served fanout-on-read: the members, sender excluded,
    /// who get the message live without a `seq`; their inbox entry is made when they next read
    /// their inbox. `recipients` then holds only the sender. See docs/GROUPS.md.
    public var liveOnlyRecipients: [String]?
    /// Free-form values stages pass to later stages (and the webhook stage sends out).
    public var attributes: [String: JSONValue] = [:]

    public init(
        kind: FrameKind, sender: Principal, ref: String?, frame: JSONObject, to: Address? = nil, body: JSONValue? = nil,
        clientMsgID: String? = nil, attachments: [JSONValue]? = nil, timestamp: Int64
    ) {
        self.kind = kind
        self.sender = sender
        self.ref = ref
        self.frame = frame
        self.to = to
        self.body = body
        self.clientMsgID = clientMsgID
        self.attachments = attachments
        self.timestamp = timestamp
    }
}
