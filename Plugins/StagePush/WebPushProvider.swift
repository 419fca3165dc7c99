import AsyncHTTPClient
import Crypto
import GatewayCore
import NIOCore
import Synchronization

/// `webpush`: an RFC 8030 POST to the subscription's endpoint with the notification encrypted
/// as RFC 8291 says (`Content-Encoding: aes128gcm`), `TTL`, `Urgency` and `Topic` (the
/// conversation, so a push service keeps only the newest notification of it), and an RFC 8292
/// VAPID `Authorization: vapid t=<ES256 JWT>, k=<public key>`. 201/2xx is sent; 404 and 410
/// mean the subscription is gone; 429 and 5xx are retried.
final class WebPushProvider: PushProvider {
    let settings: WebPushProviderSettings
    let key: P256.Signing.PrivateKey
    /// The application server key as browsers take it (`applicationServerKey`): base64url of
    /// the uncompressed public point.
    let publicKey: String
    let http: PushHTTPClient
    let clock: any GatewayClock
    /// Guards signed tokens per audience (origin), reused for 12 of their 24 hours.
    let tokens = Mutex<[String: (token: String, expires: Int64)]>([:])

    var platform: PushPlatform { .webpush }

    init(settings: WebPushProviderSettings, http: PushHTTPClient, clock: any GatewayClock) throws {
        guard let key = WebPushProviderSettings.signingKey(settings.vapid.privateKey.value) else {
            throw PushSettingsError(description: "providers.webpush.vapid.private_key is not a P-256 private key")
        }
        self.settings = settings
        self.key = key
        publicKey = Base64URLCoder.encode(Array(key.publicKey.x963Representation))
        self.http = http
        self.clock = clock
    }

    /// The origin of an endpoint URL (`https://host[:port]`), the JWT's `aud`.
    static func origin(of url: String) -> String {
        guard let schemeEnd = url.range(of: "://") else { return url }
        let rest = url[schemeEnd.upperBound...]
        let host = rest.prefix { $0 != "/" && $0 != "?" && $0 != "#" }
        return String(url[..<schemeEnd.upperBound]) + host
    }

    /// The `Authorization` value for an endpoint's origin (RFC 8292 section 3).
    func authorization(for endpoint: String) throws -> String {
        let audience = Self.origin(of: endpoint)
        let now = clock.nowMillis()
        if let cached = tokens.withLock({ $0[audience] }), cached.expires - now > 12 * 3600 * 1000 {
            return "vapid t=\(cached.token), k=\(publicKey)"
        }
        let expires = now + 24 * 3600 * 1000
        let token = try ES256Token.make(
            header: ["typ": "JWT", "alg": "ES256"],
            claims: ["aud": .string(audience), "exp": .int(expires / 1000), "sub": .string(settings.vapid.subject)], key: key)
        tokens.withLock { cache in
            if cache.count >= 1000 { cache.removeAll() }
            cache[audience] = (token, expires)
        }
        return "vapid t=\(token), k=\(publicKey)"
    }

    func send(_ notification: PushNotification, to target: PushTarget) async -> PushResult {
        guard let endpoint = target.fields["endpoint"]?.stringValue,
            let p256dh = target.fields["keys"]?["p256dh"]?.stringValue.flatMap(Base64URLCoder.decode),
            let auth = target.fields["keys"]?["auth"]?.stringValue.flatMap(Base64URLCoder.decode)
        else { return .failed("target without endpoint or keys") }
        var request = HTTPClientRequest(url: endpoint)
        request.method = .POST
        do {
            let body = try WebPushEncryption.encrypt(notification.json, p256dh: p256dh, auth: auth)
            request.headers.add(name: "Authorization", value: try authorization(for: endpoint))
            request.headers.add(name: "Content-Type", value: "application/octet-stream")
            request.headers.add(name: "Content-Encoding", value: "aes128gcm")
            request.headers.add(name: "TTL", value: String(settings.ttlSeconds))
            request.headers.add(name: "Urgency", value: settings.urgency)
            request.headers.add(name: "Topic", value: notification.collapseID)
            request.body = .bytes(ByteBuffer(bytes: body))
        } catch {
            return .failed("encryption failed: \(error)")
        }
        do {
            let reply = try await http.execute(request)
            return WebhookPushProvider.classify(status: reply.status, retryAfter: reply.headers.first(name: "Retry-After"))
        } catch {
            return .retry(reason: "\(error)", afterMs: nil)
        }
    }
}
