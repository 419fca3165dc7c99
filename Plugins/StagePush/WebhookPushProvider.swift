import AsyncHTTPClient
import Crypto
import Foundation
import GatewayCore
import NIOCore

/// `webhook`: POSTs the notification's JSON to the target's `url`, signed like the webhook
/// stage (`X-ChatGateway-Signature: sha256=<hex HMAC-SHA256 of the body>`, PROTOCOL.md §8).
/// 2xx is sent; 404 and 410 mean the target is gone; 408, 429 and 5xx are retried (honouring
/// `Retry-After`); other statuses give the notification up.
struct WebhookPushProvider: PushProvider {
    let settings: WebhookProviderSettings
    let key: SymmetricKey?
    let http: PushHTTPClient

    var platform: PushPlatform { .webhook }

    init(settings: WebhookProviderSettings, http: PushHTTPClient) {
        self.settings = settings
        key = settings.secret.map { SymmetricKey(data: Array($0.value.utf8)) }
        self.http = http
    }

    static func signature(of body: [UInt8], key: SymmetricKey) -> String {
        let mac = HMAC<SHA256>.authenticationCode(for: body, using: key)
        return "sha256=" + mac.map { String(format: "%02x", $0) }.joined()
    }

    func send(_ notification: PushNotification, to target: PushTarget) async -> PushResult {
        guard let url = target.fields["url"]?.stringValue else { return .failed("target without url") }
        guard settings.allows(url) else { return .failed("url host not in allowed_hosts") }
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "User-Agent", value: "chatgate-push/1")
        if let key { request.headers.add(name: "X-ChatGateway-Signature", value: Self.signature(of: notification.json, key: key)) }
        request.body = .bytes(ByteBuffer(bytes: notification.json))
        do {
            let reply = try await http.execute(request)
            return Self.classify(status: reply.status, retryAfter: reply.headers.first(name: "Retry-After"))
        } catch {
            return .retry(reason: "\(error)", afterMs: nil)
        }
    }

    /// The common reading of an HTTP status for webhook and Web Push.
    static func classify(status: Int, retryAfter: String?) -> PushResult {
        switch status {
        case 200..<300: .sent
        case 404, 410: .gone
        case 408, 429, 500..<600: .retry(reason: "HTTP \(status)", afterMs: retryAfterMillis(retryAfter))
        default: .failed("HTTP \(status)")
        }
    }
}
