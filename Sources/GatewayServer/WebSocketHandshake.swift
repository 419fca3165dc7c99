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
        if let version = versions.first, version.trimmingCharacters(in: .whitespaces) != "13" || versions.count > 1 {
            return .refuse(status: 426, error: .badFrame("unsupported WebSocket version"), headers: [("Sec-WebSocket-Version", "13")])
        }
        let upgrade = header("upgrade").joined(separator: ",").lowercased()
        let connection = header("connection").joined(separator: ",").lowercased()
        guard upgrade.split(separator: ",").contains(where: { $0.trimmingCharacters(in: .whitespaces) == "websocket" }),
            connection.split(separator: ",").contains(where: { $0.trimmingCharacters(in: .whitespaces) == "upgrade" })
        else {
            return .refuse(status: 400, error: .badFrame("expected a WebSocket upgrade (Upgrade: websocket, Connection: Upgrade)"), headers: [])
        }
        guard versions.count == 1 else {
            return .refuse(status: 426, error: .badFrame("missing Sec-WebSocket-Version"), headers: [("Sec-WebSocket-Version", "13")])
        }
        let keys = header("sec-websocket-key")
        guard keys.count == 1, let key = Data(base64Encoded: keys[0].trimmingCharacters(in: .whitespaces)), key.count == 16 else {
            return .refuse(status: 400, error: .badFrame("missing or malformed Sec-WebSocket-Key"), headers: [])
        }
        if let origin = header("origin").first, !allowedOrigins.isEmpty, !allowedOrigins.contains(origin) {
            return .refuse(status: 403, error: .forbidden("origin not allowed"), headers: [])
        }
        if echo { return .accept(identity: nil, echo: true) }
        guard gateway.hub.hasCapacity else {
            return .refuse(status: 503, error: .unavailable("this node is at capacity"), headers: [("Retry-After", "5")])
        }
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

    static func bearer(_ authorization: String) -> String? {
        let trimmed = authorization.trimmingCharacters(in: .whitespaces)
        guard trimmed.count > 7, trimmed.prefix(7).lowercased() == "bearer " else { return nil }
        let token = trimmed.dropFirst(7).trimmingCharacters(in: .whitespaces)
        return token.isEmpty ? nil : token
    }
}
