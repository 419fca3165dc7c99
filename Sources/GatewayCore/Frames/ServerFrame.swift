import NIOCore

/// Encoders for the server frames of PROTOCOL.md section 3.
///
/// Each returns the frame's JSON text as a `ByteBuffer`, ready for a WebSocket text message or
/// a long-poll body. They write JSON by hand (see `JSONWriter`): these run once per delivery.
public enum ServerFrame {
    /// Room left in front of a frame's JSON for the WebSocket frame header (2 to 10 bytes from a
    /// server): NIO's encoder then writes the header in place, where it would otherwise write it
    /// as a separate buffer, one more write and iovec for every frame sent.
    public static let headerRoom = 10

    /// An empty buffer for a frame of about `capacity` bytes, with `headerRoom` in front.
    public static func emptyFrame(capacity: Int) -> ByteBuffer {
        var buffer = ByteBufferAllocator().buffer(capacity: headerRoom + capacity)
        buffer.moveWriterIndex(forwardBy: headerRoom)
        buffer.moveReaderIndex(forwardBy: headerRoom)
        return buffer
    }

    /// `bytes` as a frame buffer (see `headerRoom`).
    static func framed(_ bytes: [UInt8]) -> ByteBuffer {
        var buffer = emptyFrame(capacity: bytes.count)
        buffer.writeBytes(bytes)
        return buffer
    }

    public static func error(_ error: GatewayError, ref: String?) -> ByteBuffer {
        var w = JSONWriter(capacity: 96 + error.message.utf8.count)
        w.raw("{\"type\":\"error\"")
        if let ref {
            w.key("ref")
            w.string(ref)
        }
        w.key("code")
        w.string(error.code.rawValue)
        w.key("message")
        w.string(error.message)
        if let retry = error.retryAfterMs {
            w.key("retry_after_ms")
            w.int(retry)
        }
        w.raw("}")
        return framed(w.bytes)
    }

    public static func hello(
        user: String, device: String, session: String, node: String, heartbeatMs: Int, maxFrameBytes: Int, inboxSeq: Int64,
        ref: String? = nil
    ) -> ByteBuffer {
        var w = JSONWriter()
        w.raw("{\"type\":\"hello\"")
        if let ref {
            w.key("ref")
            w.string(ref)
        }
        w.key("user")
        w.string(user)
        w.key("device")
        w.string(device)
        w.key("session")
        w.string(session)
        w.key("node")
        w.string(node)
        w.key("heartbeat_ms")
        w.int(heartbeatMs)
        w.key("max_frame_bytes")
        w.int(maxFrameBytes)
        w.key("inbox_seq")
        w.int(inboxSeq)
        w.raw("}")
        return framed(w.bytes)
    }

    public static func ack(ref: String?, id: UInt64, seq: Int64?, timestamp: Int64, clientMsgID: String, duplicate: Bool) -> ByteBuffer {
        var w = JSONWriter(capacity: 128)
        w.raw("{\"type\":\"ack\"")
        if let ref {
            w.key("ref")
            w.string(ref)
        }
        w.key("id")
        w.idString(id)
        if let seq {
            w.key("seq")
            w.int(seq)
        }
        w.key("ts")
        w.int(timestamp)
        w.key("client_msg_id")
        w.string(clientMsgID)
        if duplicate { w.raw(",\"duplicate\":true") }
        w.raw("}")
        return framed(w.bytes)
    }

    public static func pong(ref: String?) -> ByteBuffer {
        guard let ref else { return ByteBuffer(string: "{\"type\":\"pong\"}") }
        var w = JSONWriter(capacity: 32 + ref.utf8.count)
        w.raw("{\"type\":\"pong\",\"ref\":")
        w.string(ref)
        w.raw("}")
        return framed(w.bytes)
    }

    /// A `typing` event: `from` is typing to `to` (a user, or a group the recipient is in).
    public static func typing(from: String, to: Address) -> ByteBuffer {
        var w = JSONWriter(capacity: 96)
        w.raw("{\"type\":\"typing\",\"from\":")
        w.string(from)
        w.raw(",\"to\":")
        to.write(to: &w)
        w.raw("}")
        return framed(w.bytes)
    }

    /// A `receipt`: `from` has read the conversation `with` up to `upTo` (an id, as a string).
    public static func receipt(from: String, with: Address, upTo: UInt64) -> ByteBuffer {
        var w = JSONWriter(capacity: 112)
        w.raw("{\"type\":\"receipt\",\"from\":")
        w.string(from)
        w.raw(",\"with\":")
        with.write(to: &w)
        w.key("up_to")
        w.idString(upTo)
        w.raw("}")
        return framed(w.bytes)
    }

    /// A `presence` frame: each of `users` is `Presence.entry` (user, status, last_active_at);
    /// with `ref` when it answers `presence.subscribe`.
    public static func presence(ref: String?, users: [JSONValue]) -> ByteBuffer {
        var frame: JSONObject = ["type": "presence"]
        if let ref { frame["ref"] = .string(ref) }
        frame["users"] = .array(users)
        return object(frame)
    }

    /// A `message` frame for one recipient.
    public static func message(_ message: StoredMessage, seq: Int64?) -> ByteBuffer {
        var w = JSONWriter(capacity: 160 + message.body.count)
        writeMessage(message, seq: seq, into: &w)
        return framed(w.bytes)
    }

    /// Writes the message object (with `"type":"message"`) into `w`.
    public static func writeMessage(_ message: StoredMessage, seq: Int64?, into w: inout JSONWriter) {
        w.raw("{\"type\":\"message\",\"id\":")
        w.idString(message.id)
        if let seq {
            w.key("seq")
            w.int(seq)
        }
        writeMessageTail(message, into: &w)
    }

    /// Everything after `seq`: shared by every recipient of one message.
    static func writeMessageTail(_ message: StoredMessage, into w: inout JSONWriter) {
        w.key("from")
        w.string(message.from)
        w.key("to")
        message.to.write(to: &w)
        w.key("body")
        w.raw(message.body)
        w.key("ts")
        w.int(message.timestamp)
        w.key("client_msg_id")
        w.string(message.clientMsgID)
        if let attachments = message.attachments {
            w.key("attachments")
            w.raw(attachments)
        }
        w.raw("}")
    }

    /// A `sync` reply.
    public static func sync(ref: String?, entries: [InboxEntry], next: Int64, more: Bool) -> ByteBuffer {
        var w = JSONWriter(capacity: 64 + entries.reduce(0) { $0 + 160 + $1.message.body.count })
        w.raw("{\"type\":\"sync\"")
        if let ref {
            w.key("ref")
            w.string(ref)
        }
        w.raw(",\"messages\":[")
        for (offset, entry) in entries.enumerated() {
            if offset > 0 { w.raw(",") }
            writeMessage(entry.message, seq: entry.seq, into: &w)
        }
        w.raw("]")
        w.key("next")
        w.int(next)
        w.key("more")
        w.bool(more)
        w.raw("}")
        return framed(w.bytes)
    }

    /// A `history` reply: messages newest first.
    public static func history(ref: String?, messages: [StoredMessage], more: Bool, extra: JSONObject? = nil) -> ByteBuffer {
        var w = JSONWriter(capacity: 64 + messages.reduce(0) { $0 + 160 + $1.body.count })
        w.raw("{\"type\":\"history\"")
        if let ref {
            w.key("ref")
            w.string(ref)
        }
        w.raw(",\"messages\":[")
        for (offset, message) in messages.enumerated() {
            if offset > 0 { w.raw(",") }
            writeMessage(message, seq: nil, into: &w)
        }
        w.raw("]")
        w.key("more")
        w.bool(more)
        if let extra {
            for member in extra.members {
                w.raw(",")
                w.string(member.key)
                w.raw(":")
                w.value(member.value)
            }
        }
        w.raw("}")
        return framed(w.bytes)
    }

    /// Any frame given as a JSON object (used for the less frequent frames).
    public static func object(_ object: JSONObject) -> ByteBuffer {
        framed(JSONValue.object(object).jsonBytes)
    }
}

/// The parts of a `message` frame that every recipient shares, so a fanout writes each
/// recipient's frame as prefix + seq + tail without re-encoding the message.
public struct MessageFrameTemplate: Sendable {
    private let prefix: [UInt8]
    private let tail: [UInt8]

    public init(_ message: StoredMessage) {
        var p = JSONWriter(capacity: 48)
        p.raw("{\"type\":\"message\",\"id\":")
        p.idString(message.id)
        p.raw(",\"seq\":")
        prefix = p.bytes
        var t = JSONWriter(capacity: 128 + message.body.count)
        ServerFrame.writeMessageTail(message, into: &t)
        tail = t.bytes
    }

    public func frame(seq: Int64) -> ByteBuffer {
        var buffer = ServerFrame.emptyFrame(capacity: prefix.count + tail.count + 20)
        buffer.writeBytes(prefix)
        buffer.writeString(String(seq))
        buffer.writeBytes(tail)
        return buffer
    }
}
