import GatewayCore

/// The transport a session runs on.
public enum ChatTransportKind: String, Sendable {
    case webSocket = "websocket"
    case longPoll = "longpoll"
}

/// The client's connection state, reported as `ChatEvent.state`.
public enum ConnectionState: Sendable, Equatable {
    case idle
    case connecting(ChatTransportKind)
    case open(ChatTransportKind)
    /// Waiting `delayMs` (full jitter) before the next attempt, after `reason`.
    case reconnecting(delayMs: Int, reason: String)
    case closed(reason: String)
}

/// A message of the user's inbox (PROTOCOL.md section 3, `message`).
public struct ChatMessage: Sendable, Equatable {
    /// Snowflake id, a decimal string.
    public var id: String
    /// Position in this user's inbox: contiguous 1, 2, 3, ...
    public var seq: Int64
    public var from: String
    public var to: Address?
    public var body: JSONValue
    public var ts: Int64
    public var clientMsgID: String
    public var attachments: [JSONValue]
    /// The frame as received.
    public var frame: JSONObject

    init(_ frame: JSONObject) {
        self.frame = frame
        id = frame["id"]?.stringValue ?? ""
        seq = frame["seq"]?.int64Value ?? 0
        from = frame["from"]?.stringValue ?? ""
        to = try? Address(json: frame["to"], field: "to")
        body = frame["body"] ?? .null
        ts = frame["ts"]?.int64Value ?? 0
        clientMsgID = frame["client_msg_id"]?.stringValue ?? ""
        attachments = frame["attachments"]?.arrayValue ?? []
    }

    public static func == (lhs: ChatMessage, rhs: ChatMessage) -> Bool { lhs.frame == rhs.frame }
}

/// The gateway's `ack`: the message is durable and in every recipient's inbox.
public struct Ack: Sendable, Equatable {
    public var id: String
    /// The message's seq in the sender's own inbox.
    public var seq: Int64
    public var ts: Int64
    public var clientMsgID: String
    /// True when this answers a resend of an already stored `client_msg_id`.
    public var duplicate: Bool

    init(_ frame: JSONObject) {
        id = frame["id"]?.stringValue ?? ""
        seq = frame["seq"]?.int64Value ?? 0
        ts = frame["ts"]?.int64Value ?? 0
        clientMsgID = frame["client_msg_id"]?.stringValue ?? ""
        duplicate = frame["duplicate"]?.boolValue ?? false
    }
}

/// What the client reports, in order, on `ChatClient.events`.
public enum ChatEvent: Sendable {
    case hello(JSONObject)
    /// A message handed to the app; `delivered` covers it once it was yielded.
    case message(ChatMessage)
    case ack(Ack)
    case presence(JSONObject)
    case typing(JSONObject)
    case receipt(JSONObject)
    case state(ConnectionState)
    /// A sync finished: the client holds the inbox up to `curMaxSeq`.
    case synced(curMaxSeq: Int64)
    case error(ChatError)
}

/// An error from the gateway (a PROTOCOL.md section 3 code) or the client (`closed`, `unavailable`).
public struct ChatError: Error, Sendable, CustomStringConvertible, Equatable {
    public var code: String
    public var message: String
    public var retryAfterMs: Int?
    /// The HTTP status, for errors of the HTTP API.
    public var status: Int?

    public init(code: String, message: String, retryAfterMs: Int? = nil, status: Int? = nil) {
        self.code = code
        self.message = message
        self.retryAfterMs = retryAfterMs
        self.status = status
    }

    init(frame: JSONObject) {
        self.init(
            code: frame["code"]?.stringValue ?? "internal", message: frame["message"]?.stringValue ?? "",
            retryAfterMs: frame["retry_after_ms"]?.int64Value.map { Int($0) })
    }

    public var description: String { "\(code): \(message)" }

    public static let closed = ChatError(code: "closed", message: "the client was closed")
    static func unavailable(_ message: String) -> ChatError { ChatError(code: "unavailable", message: message) }
}
