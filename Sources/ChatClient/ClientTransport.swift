import GatewayCore

/// How a session ended, and what the client should do next (docs/CLIENTS.md).
struct CloseInfo: Sendable {
    var code: UInt16?
    var reason: String
    var retryAfterMs: Int?
    /// The gateway refused the token: refresh it before the next attempt.
    var tokenRefused = false
    /// Reconnect after a short jittered wait (1001, 4008, a dead connection).
    var immediate = false
    /// The transport never opened (the WebSocket handshake failed): long-poll may still work.
    var neverOpened = false

    /// What a WebSocket close code means for the next attempt.
    static func webSocket(code: UInt16?, reason: String) -> CloseInfo {
        switch code {
        case 1001: CloseInfo(code: code, reason: reason.isEmpty ? "the gateway is going away" : reason, immediate: true)
        case 1008: CloseInfo(code: code, reason: reason.isEmpty ? "policy" : reason, retryAfterMs: 5000)
        case 4000: CloseInfo(code: code, reason: reason.isEmpty ? "bad frames" : reason, retryAfterMs: 5000)
        case 4001: CloseInfo(code: code, reason: reason.isEmpty ? "unauthorized" : reason, tokenRefused: true)
        case 4008: CloseInfo(code: code, reason: reason.isEmpty ? "slow consumer" : reason, immediate: true)
        default: CloseInfo(code: code, reason: reason.isEmpty ? "connection lost" : reason)
        }
    }

    /// What an HTTP refusal means (401: token; 429/503: Retry-After).
    static func http(_ error: ChatError, neverOpened: Bool = false) -> CloseInfo {
        var info = CloseInfo(reason: error.description, retryAfterMs: error.retryAfterMs, neverOpened: neverOpened)
        if error.status == 401 || error.code == "unauthorized" || error.code == "token_expired" { info.tokenRefused = true }
        if error.status == 404 { info.immediate = true }
        return info
    }
}

/// Frames and the end of a session, in order.
enum InboundEvent: Sendable {
    case frame(JSONObject)
    case closed(CloseInfo)
}

/// One open session on one transport. `send` keeps call order; `inbound` ends with `.closed`.
protocol ClientTransport: AnyObject, Sendable {
    var kind: ChatTransportKind { get }
    var hello: JSONObject { get }
    var inbound: AsyncStream<InboundEvent> { get }
    /// Queues a frame; false when the session is over.
    func send(_ frame: JSONValue) -> Bool
    func close()
}

/// A failed connect, with what to do next.
struct ConnectFailure: Error {
    var info: CloseInfo
}
