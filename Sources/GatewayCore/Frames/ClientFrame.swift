import NIOCore
/// The client frame types of PROTOCOL.md section 2.
public enum FrameKind: String, Sendable, Hashable, CaseIterable, Codable {
    case auth
    case send
    case sync
    case history
    case read
    case typing
    case presenceSubscribe = "presence.subscribe"
    case presenceUnsubscribe = "presence.unsubscribe"
    case ping
    /// This device holds every message of its user's inbox up to `seq` (cancels waiting pushes).
    case delivered
}

/// A parsed client frame: its kind, `ref`, and the whole object for the typed accessors.
public struct ClientFrame: Sendable {
    public let kind: FrameKind
    public let ref: String?
    public let object: JSONObject

    public init(kind: FrameKind, ref: String?, object: JSONObject) {
        self.kind = kind
        self.ref = ref
        self.object = object
    }

    /// Parses a frame from its JSON text. The error carries the `ref` when one could be read,
    /// so the `error` reply can echo it.
    public static func parse(_ bytes: UnsafeRawBufferPointer, maxDepth: Int = JSONParser.defaultMaxDepth) throws(FrameError) -> ClientFrame {
        let value: JSONValue
        do {
            value = try JSONParser.parse(bytes, maxDepth: maxDepth)
        } catch {
            throw FrameError(ref: nil, error: .badFrame(error.description))
        }
        return try parse(value)
    }

    /// Parses a frame's JSON text, as a result (the transports decide when to answer an error).
    public static func parse(_ text: ByteBuffer) -> Result<ClientFrame, FrameError> {
        text.withUnsafeReadableBytes { bytes in
            do throws(FrameError) {
                return .success(try ClientFrame.parse(bytes))
            } catch {
                return .failure(error)
            }
        }
    }

    public static func parse(_ value: JSONValue) throws(FrameError) -> ClientFrame {
        guard case .object(let object) = value else {
            throw FrameError(ref: nil, error: .badFrame("a frame must be a JSON object"))
        }
        var ref: String?
        if let refValue = object["ref"], !refValue.isNull {
            guard let string = refValue.stringValue, string.utf8.count <= 64 else {
                throw FrameError(ref: nil, error: .badFrame("'ref' must be a string of at most 64 characters"))
            }
            ref = string
        }
        guard let typeValue = object["type"] else {
            throw FrameError(ref: ref, error: .badFrame("missing 'type'"))
        }
        guard let type = typeValue.stringValue else {
            throw FrameError(ref: ref, error: .badFrame("'type' must be a string"))
        }
        guard let kind = FrameKind(rawValue: type) else {
            throw FrameError(ref: ref, error: .badFrame("unknown frame type '\(type.prefix(64))'"))
        }
        return ClientFrame(kind: kind, ref: ref, object: object)
    }
}

/// A frame that could not be parsed, with the `ref` to echo when there was one.
public struct FrameError: Error, Sendable {
    public let ref: String?
    public let error: GatewayError

    public init(ref: String?, error: GatewayError) {
        self.ref = ref
        self.error = error
    }
}

// MARK: Typed views of the frames

extension ClientFrame {
    func string(_ key: String, required: Bool, maxLength: Int = 64) throws(GatewayError) -> String? {
        guard let value = object[key], !value.isNull else {
            if required { throw .badFrame("missing '\(key)'") }
            return nil
        }
        guard let string = value.stringValue else { throw .badFrame("'\(key)' must be a string, got \(value.typeName)") }
        guard string.utf8.count <= maxLength else { throw .badFrame("'\(key)' is longer than \(maxLength) bytes") }
        return string
    }

    func integer(_ key: String) throws(GatewayError) -> Int64? {
        guard let value = object[key], !value.isNull else { return nil }
        guard case .number(let text) = value, let int = Int64(text) else {
            throw .badFrame("'\(key)' must be an integer")
        }
        return int
    }

    func messageID(_ key: String) throws(GatewayError) -> UInt64? {
        guard let value = object[key], !value.isNull else { return nil }
        switch value {
        case .string(let text):
            guard let id = UInt64(text) else { throw .badFrame("'\(key)' must be a message id (decimal string)") }
            return id
        case .number(let text):
            guard let id = UInt64(text) else { throw .badFrame("'\(key)' must be a message id (decimal string)") }
            return id
        default:
            throw .badFrame("'\(key)' must be a message id (decimal string)")
        }
    }

    func limit(default defaultValue: Int, max: Int) throws(GatewayError) -> Int {
        guard let limit = try integer("limit") else { return defaultValue }
        guard limit >= 1, limit <= Int64(max) else { throw .badFrame("'limit' must be 1...\(max) (was \(limit))") }
        return Int(limit)
    }

    /// `auth`: the token and optional device.
    public func authRequest() throws(GatewayError) -> (token: String, device: String?) {
        let token = try string("token", required: true, maxLength: 16 * 1024)!
        let device = try string("device", required: false)
        if let device, !Address.isValidID(device) { throw .badFrame("'device' must be 1 to 64 characters of [A-Za-z0-9_.@-]") }
        return (token, device)
    }

    /// `send`: the message a client wants to post.
    public func sendRequest() throws(GatewayError) -> SendRequest {
        let to = try Address(json: object["to"], field: "to")
        guard let body = object["body"] else { throw .badFrame("missing 'body'") }
        let clientMsgID = try string("client_msg_id", required: true)!
        guard !clientMsgID.isEmpty else { throw .badFrame("'client_msg_id' must not be empty") }
        // No control characters: the store keeps text up to a NUL, so "\u0000a" and "\u0000b"
        // would collide as one key (found by the frame fuzzer).
        guard !clientMsgID.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) else {
            throw .badFrame("'client_msg_id' must not contain control characters")
        }
        var attachments: [JSONValue]?
        if let value = object["attachments"], !value.isNull {
            guard let array = value.arrayValue else { throw .badFrame("'attachments' must be an array") }
            guard array.count <= 10 else { throw .badFrame("at most 10 attachments (was \(array.count))") }
            attachments = array
        }
        return SendRequest(to: to, body: body, clientMsgID: clientMsgID, attachments: attachments)
    }

    /// `sync`: `since` (seq, 0 for all) and `limit` (default 100, max 1000).
    public func syncRequest() throws(GatewayError) -> (since: Int64, limit: Int) {
        let since = try integer("since") ?? 0
        guard since >= 0 else { throw .badFrame("'since' must be a seq >= 0 (was \(since))") }
        return (since, try limit(default: 100, max: 1000))
    }

    /// `history`: `with`, optional `before` (id), `limit` (default 50, max 500).
    public func historyRequest() throws(GatewayError) -> (with: Address, before: UInt64?, limit: Int) {
        let with = try Address(json: object["with"], field: "with")
        return (with, try messageID("before"), try limit(default: 50, max: 500))
    }

    /// `read`: `with` and `up_to` (id).
    public func readRequest() throws(GatewayError) -> (with: Address, upTo: UInt64) {
        let with = try Address(json: object["with"], field: "with")
        guard let upTo = try messageID("up_to") else { throw .badFrame("missing 'up_to'") }
        return (with, upTo)
    }

    /// `delivered`: `seq`, the highest inbox seq this device holds every message up to.
    public func deliveredRequest() throws(GatewayError) -> Int64 {
        guard let seq = try integer("seq") else { throw .badFrame("missing 'seq'") }
        guard seq >= 0 else { throw .badFrame("'seq' must be a seq >= 0 (was \(seq))") }
        return seq
    }

    /// `typing`: `to`.
    public func typingRequest() throws(GatewayError) -> Address {
        try Address(json: object["to"], field: "to")
    }

    /// `presence.subscribe` / `presence.unsubscribe`: `users`.
    public func presenceUsers(max: Int = 1000) throws(GatewayError) -> [String] {
        guard let array = object["users"]?.arrayValue else { throw .badFrame("'users' must be an array of user ids") }
        guard array.count <= max else { throw .badFrame("at most \(max) users (was \(array.count))") }
        var users: [String] = []
        users.reserveCapacity(array.count)
        for value in array {
            guard let user = value.stringValue, Address.isValidID(user) else {
                throw .badFrame("'users' must be an array of user ids")
            }
            users.append(user)
        }
        return users
    }
}

/// What a `send` frame asks for.
public struct SendRequest: Sendable {
    public var to: Address
    public var body: JSONValue
    public var clientMsgID: String
    public var attachments: [JSONValue]?
}
