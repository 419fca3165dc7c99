import Foundation
import GatewayCore

/// Decides whether a WebSocket handshake on `/v1/ws` (or `/v1/echo`) may upgrade.
///
/// The same decision runs twice: in NIO's upgrader, where a refusal lets the request fall
/// through to the HTTP router, and in the router's `GET /v1/ws` route, which answers that
/// request with the refusal's status (400, 401, 403, 426, 429, 503) instead of a 101.
struct WebSocketHandshake: Sendable {
    enum Decision: Sendable {
        /// Upgrade; `identity` is set when the handshake carried a valid token.
        case accept(identity: Identity?, echo: Bool)
        case refuse(status: Int, error: GatewayError, headers: [(String, String)])
    }

    let gateway: Gateway
    let allowedOrigins: Set<String>
    let echoEnabled: Bool

    /// - Parameter header: all values of a header, by case-insensitive name.
    func evaluate(
        method: String, isHTTP11: Bool, path: String, query: String?, remoteAddress: String?, header: (String) -> [String]
    ) async -> Decision {
        let echo = path == "/v1/echo"
        guard path == "/v1/ws" || (echo && echoEnabled) else {
            return .refuse(status: 404, error: .notFound("no such endpoint"), headers: [])
        }
        guard method == "GET", isHTTP11 else {
            return .refuse(status: 400, error: .badFrame("a WebSocket handshake is an HTTP/1.1 GET"), headers: [])
        }
        let versions = header("sec-websocket-version")
        if let version = versions.first, HeaderText.trimmed(version) != "13" || versions.count > 1 {
            return .refuse(status: 426, error: .badFrame("unsupported WebSocket version"), headers: [("Sec-WebSocket-Version", "13")])
        }
        let upgrade = header("upgrade").joined(separator: ",").lowercased()
        let connection = header("connection").joined(separator: ",").lowercased()
        guard upgrade.split(separator: ",").contains(where: { HeaderText.trimmed($0) == "websocket" }),
            connection.split(separator: ",").contains(where: { HeaderText.trimmed($0) == "upgrade" })
        else {
            return .refuse(status: 400, error: .badFrame("expected a WebSocket upgrade (Upgrade: websocket, Connection: Upgrade)"), headers: [])
        }
        guard versions.count == 1 else {
            return .refuse(status: 426, error: .badFrame("missing Sec-WebSocket-Version"), headers: [("Sec-WebSocket-Version", "13")])
        }
        let keys = header("sec-websocket-key")
        guard keys.count == 1, let key = Data(base64Encoded: String(HeaderText.trimmed(keys[0]))), key.count == 16 else {
            return .refuse(status: 400, error: .badFrame("missing or malformed Sec-WebSocket-Key"), headers: [])
        }
        if let origin = header("origin").first, !allowedOrigins.isEmpty, !allowedOrigins.contains(origin) {
            return .refuse(status: 403, error: .forbidden("origin not allowed"), headers: [])
        }
        if echo { return .accept(identity: nil, echo: true) }
        // `limits.max_connections` was applied when the socket was accepted (`ConnectionAdmission`).
        guard gateway.hub.canOpen(fromAddress: remoteAddress) else {
            return .refuse(status: 429, error: GatewayError(.rateLimited, "too many connections from this address"), headers: [("Retry-After", "5")])
        }
        guard let token = Self.token(query: query, authorization: header("authorization").first) else {
            return .accept(identity: nil, echo: false)
        }
        do {
            let identity = try await gateway.authenticate(token: token)
            guard gateway.hub.canOpen(user: identity.user) else {
                return .refuse(status: 429, error: GatewayError(.rateLimited, "too many sessions for this user"), headers: [("Retry-After", "5")])
            }
            return .accept(identity: identity, echo: false)
        } catch {
            return .refuse(status: 401, error: error, headers: [])
        }
    }

    /// The bearer token from `Authorization`, else the `access_token` query parameter.
    static func token(query: String?, authorization: String?) -> String? {
        if let authorization, let token = bearer(authorization) { return token }
        guard let query else { return nil }
        for pair in query.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1)
            if parts.count == 2, parts[0] == "access_token" {
                return String(parts[1]).removingPercentEncoding ?? String(parts[1])
            }
        }
        return nil
    }

    /// The token of an `Authorization: Bearer <token>` value: the scheme in any case, surrounding
    /// whitespace trimmed (as `trimmingCharacters(in: .whitespaces)` did, without Foundation).
    static func bearer(_ authorization: String) -> String? {
        let trimmed = HeaderText.trimmed(authorization)
        // "Bearer " in any case: each of the first seven characters is exactly that ASCII letter
        // (either case) or the space, and at least one character follows.
        var index = trimmed.startIndex
        for expected in "bearer ".utf8 {
            guard index < trimmed.endIndex, let ascii = trimmed[index].asciiValue,
                ascii | (expected == 0x20 ? 0 : 0x20) == expected
            else { return nil }
            index = trimmed.index(after: index)
        }
        guard index < trimmed.endIndex else { return nil }
        let token = HeaderText.trimmed(trimmed[index...])
        return token.isEmpty ? nil : String(token)
    }
}

/// Whitespace trimming for header values, by Unicode scalar, with the set and the semantics of
/// Foundation's `trimmingCharacters(in: .whitespaces)` (which went through `NSString`: 6.7 % of a
/// handshake's CPU).
enum HeaderText {
    /// Whether `scalar` is in `CharacterSet.whitespaces`: tab and the space separators, as
    /// swift-corelibs-foundation defines them (U+200B included).
    @inline(__always)
    static func isWhitespace(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x20, 0x09: true
        case 0..<0x80: false
        case 0xA0, 0x1680, 0x2000...0x200B, 0x202F, 0x205F, 0x3000: true
        default: false
        }
    }

    /// `text` without leading and trailing whitespace.
    static func trimmed<S: StringProtocol>(_ text: S) -> Substring {
        var scalars = Substring(text).unicodeScalars
        while let first = scalars.first, isWhitespace(first) { scalars.removeFirst() }
        while let last = scalars.last, isWhitespace(last) { scalars.removeLast() }
        return Substring(scalars)
    }
}
