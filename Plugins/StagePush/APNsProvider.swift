import AsyncHTTPClient
import Crypto
import GatewayCore
import NIOCore
import Synchronization

/// `apns`: Apple Push Notification service, HTTP/2 over TLS (async-http-client negotiates h2
/// by ALPN), token authentication: an ES256 provider JWT (`kid` the key id, `iss` the team,
/// `iat`), reused and replaced before it is 50 minutes old (APNs refuses tokens older than an
/// hour and ones renewed more often than every 20 minutes).
///
/// `POST {base}/3/device/{token}` with `apns-topic` (the target's bundle id), `apns-push-type`,
/// `apns-priority`, `apns-collapse-id` (the conversation) and `apns-expiration`. The body is
/// `{"aps": {...}, "data": <notification>}`. 200 is sent; 410, and 400 `BadDeviceToken` /
/// `DeviceTokenNotForTopic`, mean the target is gone; 403 `ExpiredProviderToken` renews the
/// token and retries; 429 and 5xx are retried (`Retry-After`).
final class APNsProvider: PushProvider {
    let settings: APNsProviderSettings
    let key: P256.Signing.PrivateKey
    let http: PushHTTPClient
    let clock: any GatewayClock
    /// Guards the provider token and when it was made (ms).
    let token = Mutex<(value: String, issuedAt: Int64)?>(nil)

    static let tokenLifetimeMs: Int64 = 50 * 60 * 1000

    var platform: PushPlatform { .apns }

    init(settings: APNsProviderSettings, http: PushHTTPClient, clock: any GatewayClock) throws {
        self.settings = settings
        key = try P256.Signing.PrivateKey(pemRepresentation: settings.privateKey.value)
        self.http = http
        self.clock = clock
    }

    /// The provider token, made anew when the cached one is 50 minutes old (or `renew`).
    func providerToken(renew: Bool = false) throws -> String {
        let now = clock.nowMillis()
        if !renew, let cached = token.withLock({ $0 }), now - cached.issuedAt < Self.tokenLifetimeMs, now >= cached.issuedAt {
            return cached.value
        }
        let value = try ES256Token.make(
            header: ["alg": "ES256", "kid": .string(settings.keyID)], claims: ["iss": .string(settings.teamID), "iat": .int(now / 1000)], key: key)
        token.withLock { $0 = (value, now) }
        return value
    }

    func payload(_ notification: PushNotification) -> [UInt8] {
        var w = JSONWriter(capacity: notification.json.count + 128)
        if settings.pushType == "background" {
            w.raw("{\"aps\":{\"content-available\":1}")
        } else {
            w.raw("{\"aps\":{\"alert\":{\"body\":")
            w.string(notification.count == 1 ? "New message" : "\(notification.count) new messages")
            w.raw("},\"sound\":\"default\",\"thread-id\":")
            w.string(notification.collapseID)
            w.raw(",\"mutable-content\":1}")
        }
        w.raw(",\"data\":")
        w.raw(notification.json)
        w.raw("}")
        return w.bytes
    }

    func send(_ notification: PushNotification, to target: PushTarget) async -> PushResult {
        await send(notification, to: target, renewed: false)
    }

    private func send(_ notification: PushNotification, to target: PushTarget, renewed: Bool) async -> PushResult {
        guard let deviceToken = target.fields["token"]?.stringValue, let topic = target.fields["topic"]?.stringValue else {
            return .failed("target without token or topic")
        }
        let base = target.fields["sandbox"]?.boolValue == true ? settings.sandboxURL : settings.productionURL
        var request = HTTPClientRequest(url: base + "/3/device/" + deviceToken)
        request.method = .POST
        do {
            request.headers.add(name: "authorization", value: "bearer " + (try providerToken(renew: renewed)))
        } catch {
            return .failed("cannot sign the provider token: \(error)")
        }
        request.headers.add(name: "apns-topic", value: topic)
        request.headers.add(name: "apns-push-type", value: settings.pushType)
        request.headers.add(name: "apns-priority", value: String(settings.pushType == "background" ? min(settings.priority, 5) : settings.priority))
        request.headers.add(name: "apns-collapse-id", value: notification.collapseID)
        let expiration = settings.expirationSeconds == 0 ? 0 : clock.nowMillis() / 1000 + Int64(settings.expirationSeconds)
        request.headers.add(name: "apns-expiration", value: String(expiration))
        request.headers.add(name: "content-type", value: "application/json")
        request.body = .bytes(ByteBuffer(bytes: payload(notification)))
        let reply: PushHTTPClient.Reply
        do {
            reply = try await http.execute(request)
        } catch {
            return .retry(reason: "\(error)", afterMs: nil)
        }
        let reason = (try? JSONParser.parse(reply.body))?["reason"]?.stringValue ?? ""
        switch reply.status {
        case 200:
            return .sent
        case 410:
            return .gone
        case 400 where reason == "BadDeviceToken" || reason == "DeviceTokenNotForTopic":
            return .gone
        case 403 where reason == "ExpiredProviderToken" && !renewed:
            return await send(notification, to: target, renewed: true)
        case 429, 500..<600:
            return .retry(reason: "HTTP \(reply.status) \(reason)", afterMs: retryAfterMillis(reply.headers.first(name: "Retry-After")))
        default:
            return .failed("HTTP \(reply.status) \(reason)")
        }
    }
}
