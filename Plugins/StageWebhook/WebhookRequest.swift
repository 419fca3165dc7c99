import Crypto
import GatewayCore

/// The JSON a webhook receives for one frame (PROTOCOL.md section 8), and its signature.
enum WebhookRequest {
    /// `{"version":1,"stage","user","device","frame","id"?,"attributes"}`.
    ///
    /// `frame` is the client's frame with what earlier stages changed: for `send`, the
    /// envelope's current `to`, `body`, `client_msg_id` and `attachments`. `id` is there once
    /// the `id` stage has stamped one (a decimal string).
    static func body(for envelope: Envelope, stage: String) -> [UInt8] {
        var frame = envelope.frame
        if envelope.kind == .send {
            if let to = envelope.to { frame["to"] = to.json }
            if let body = envelope.body { frame["body"] = body }
            if let clientMsgID = envelope.clientMsgID { frame["client_msg_id"] = .string(clientMsgID) }
            if let attachments = envelope.attachments { frame["attachments"] = .array(attachments) }
        }
        var w = JSONWriter(capacity: 256)
        w.raw("{\"version\":1")
        w.key("stage")
        w.string(stage)
        w.key("user")
        w.string(envelope.sender.user)
        w.key("device")
        w.string(envelope.sender.device)
        w.key("frame")
        w.value(.object(frame))
        if let id = envelope.id {
            w.key("id")
            w.idString(id)
        }
        w.key("attributes")
        w.value(.object(JSONObject(envelope.attributes.sorted { $0.key < $1.key }.map { (key: $0.key, value: $0.value) })))
        w.raw("}")
        return w.bytes
    }

    /// `sha256=<lowercase hex HMAC-SHA256 of body>`, the `X-ChatGateway-Signature` value.
    static func signature(of body: [UInt8], key: SymmetricKey) -> String {
        let mac = HMAC<SHA256>.authenticationCode(for: body, using: key)
        let digits = Array("0123456789abcdef".utf8)
        var hex: [UInt8] = Array("sha256=".utf8)
        hex.reserveCapacity(7 + 64)
        for byte in mac {
            hex.append(digits[Int(byte >> 4)])
            hex.append(digits[Int(byte & 0xF)])
        }
        return String(decoding: hex, as: UTF8.self)
    }
}
