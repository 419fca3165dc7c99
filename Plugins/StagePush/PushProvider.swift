import Crypto
import Foundation
import GatewayCore

/// One notification as a provider sends it: the JSON of PROTOCOL.md section 9 and what the
/// HTTP headers of some providers need.
public struct PushNotification: Sendable {
    /// The notification's JSON text (the webhook body, the Web Push plaintext, the `data` of
    /// APNs and FCM).
    public var json: [UInt8]
    /// Stable per (target, conversation): Web Push `Topic`, `apns-collapse-id`, FCM collapse key.
    public var collapseID: String
    public var count: Int

    /// Builds the JSON from a queued job.
    static func make(job: PushJob) -> PushNotification {
        var w = JSONWriter(capacity: 128 + job.messages.count + (job.body?.count ?? 0))
        w.raw("{\"type\":\"push\",\"user\":")
        w.string(job.user)
        w.raw(",\"count\":")
        w.int(job.count)
        w.raw(",\"messages\":")
        w.raw(job.messages)
        if let body = job.body {
            w.raw(",\"body\":")
            w.raw(body)
        }
        w.raw("}")
        return PushNotification(json: w.bytes, collapseID: collapseID(job.collapseKey), count: job.count)
    }

    /// 32 base64url characters of the conversation's SHA-256 (RFC 8030's `Topic` allows 32).
    static func collapseID(_ conversation: String) -> String {
        String(Base64URLCoder.encode(Array(SHA256.hash(data: Array(conversation.utf8)))).prefix(32))
    }
}

/// What a provider made of one send.
public enum PushResult: Sendable, Equatable {
    case sent
    /// A temporary failure: try again, after `afterMs` when the provider said (`Retry-After`).
    case retry(reason: String, afterMs: Int64?)
    /// The provider says the target no longer exists (APNs 410, FCM `UNREGISTERED`, Web Push
    /// 404/410): remove it.
    case gone
    /// A permanent failure of this notification (bad request): give it up.
    case failed(String)
}

/// Sends notifications to the targets of one platform.
///
/// Implementation requirements: never throw; map every outcome to a `PushResult`, and bound
/// each call by the stage's `timeout_ms`.
protocol PushProvider: Sendable {
    var platform: PushPlatform { get }
    func send(_ notification: PushNotification, to target: PushTarget) async -> PushResult
}

/// Parses an HTTP `Retry-After` value in seconds (the HTTP-date form is treated as absent).
func retryAfterMillis(_ value: String?) -> Int64? {
    guard let value, let seconds = Int64(value.trimmingCharacters(in: .whitespaces)), seconds >= 0 else { return nil }
    return min(seconds, 86_400) * 1000
}
