import GatewayCore

/// Settings of the `push` stage (docs/PUSH.md).
///
/// | key | type | default | constraint |
/// |---|---|---|---|
/// | `confirm_ms` | int | 10000 | 0...3600000: a recipient with live sessions is notified only when none of its devices confirmed the message (`delivered` or `read`) within this; 0: never |
/// | `collapse_ms` | int | 5000 | 0...3600000: messages of one conversation to one target within this become one notification (`count`, `messages`) |
/// | `include_body` | bool | false | put the newest message's `body` in the notification |
/// | `max_devices_per_user` | int | 10 | 1...1000: push targets one user may register |
/// | `allow_http` | bool | false | accept plain `http://` Web Push endpoints and provider base URLs (development only) |
/// | `concurrency` | int | 8 | 1...256: notifications sent at once by this node |
/// | `max_attempts` | int | 5 | 1...100: sends of one notification before it is given up |
/// | `backoff_ms` | int | 1000 | 1...3600000: first retry delay; doubles per attempt, with jitter (a provider's `Retry-After` wins) |
/// | `max_backoff_ms` | int | 300000 | `backoff_ms`...86400000: longest retry delay |
/// | `timeout_ms` | int | 10000 | 1...120000: one provider call |
/// | `lease_ms` | int | 60000 | 1000...3600000: a claimed notification is retried by another worker after this if its node died |
/// | `poll_ms` | int | 1000 | 10...60000: how often an idle worker looks at the queue (jobs of other nodes, clock changes) |
/// | `max_listed` | int | 20 | 1...1000: message entries listed in one notification (`count` goes on) |
/// | `providers` | map | `{}` | at least one of `webhook`, `webpush`, `apns`, `fcm` (see each type) |
public struct PushSettings: Codable, Sendable {
    public var confirmMs: Int
    public var collapseMs: Int
    public var includeBody: Bool
    public var maxDevicesPerUser: Int
    public var allowHTTP: Bool
    public var concurrency: Int
    public var maxAttempts: Int
    public var backoffMs: Int
    public var maxBackoffMs: Int
    public var timeoutMs: Int
    public var leaseMs: Int
    public var pollMs: Int
    public var maxListed: Int
    public var providers: Providers

    enum CodingKeys: String, CodingKey {
        case confirmMs = "confirm_ms"
        case collapseMs = "collapse_ms"
        case includeBody = "include_body"
        case maxDevicesPerUser = "max_devices_per_user"
        case allowHTTP = "allow_http"
        case concurrency
        case maxAttempts = "max_attempts"
        case backoffMs = "backoff_ms"
        case maxBackoffMs = "max_backoff_ms"
        case timeoutMs = "timeout_ms"
        case leaseMs = "lease_ms"
        case pollMs = "poll_ms"
        case maxListed = "max_listed"
        case providers
    }

    /// The providers, one per platform; a platform without one is not registered or notified.
    public struct Providers: Codable, Sendable {
        public var webhook: WebhookProviderSettings?
        public var webpush: WebPushProviderSettings?
        public var apns: APNsProviderSettings?
        public var fcm: FCMProviderSettings?

        public init(
            webhook: WebhookProviderSettings? = nil, webpush: WebPushProviderSettings? = nil, apns: APNsProviderSettings? = nil,
            fcm: FCMProviderSettings? = nil
        ) {
            self.webhook = webhook
            self.webpush = webpush
            self.apns = apns
            self.fcm = fcm
        }

        public var platforms: Set<PushPlatform> {
            var set: Set<PushPlatform> = []
            if webhook != nil { set.insert(.webhook) }
            if webpush != nil { set.insert(.webpush) }
            if apns != nil { set.insert(.apns) }
            if fcm != nil { set.insert(.fcm) }
            return set
        }
    }

    public init(
        confirmMs: Int = 10_000, collapseMs: Int = 5_000, includeBody: Bool = false, maxDevicesPerUser: Int = 10, allowHTTP: Bool = false,
        concurrency: Int = 8, maxAttempts: Int = 5, backoffMs: Int = 1000, maxBackoffMs: Int = 300_000, timeoutMs: Int = 10_000,
        leaseMs: Int = 60_000, pollMs: Int = 1000, maxListed: Int = 20, providers: Providers
    ) {
        self.confirmMs = confirmMs
        self.collapseMs = collapseMs
        self.includeBody = includeBody
        self.maxDevicesPerUser = maxDevicesPerUser
        self.allowHTTP = allowHTTP
        self.concurrency = concurrency
        self.maxAttempts = maxAttempts
        self.backoffMs = backoffMs
        self.maxBackoffMs = maxBackoffMs
        self.timeoutMs = timeoutMs
        self.leaseMs = leaseMs
        self.pollMs = pollMs
        self.maxListed = maxListed
        self.providers = providers
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        func int(_ key: CodingKeys, _ defaultValue: Int, _ range: ClosedRange<Int>) throws -> Int {
            let value = try c.decodeIfPresent(Int.self, forKey: key) ?? defaultValue
            guard range.contains(value) else {
                throw DecodingError.dataCorruptedError(forKey: key, in: c, debugDescription: "must be \(range.lowerBound)...\(range.upperBound) (was \(value))")
            }
            return value
        }
        confirmMs = try int(.confirmMs, 10_000, 0...3_600_000)
        collapseMs = try int(.collapseMs, 5_000, 0...3_600_000)
        includeBody = try c.decodeIfPresent(Bool.self, forKey: .includeBody) ?? false
        maxDevicesPerUser = try int(.maxDevicesPerUser, 10, 1...1000)
        allowHTTP = try c.decodeIfPresent(Bool.self, forKey: .allowHTTP) ?? false
        concurrency = try int(.concurrency, 8, 1...256)
        maxAttempts = try int(.maxAttempts, 5, 1...100)
        backoffMs = try int(.backoffMs, 1000, 1...3_600_000)
        maxBackoffMs = try int(.maxBackoffMs, 300_000, backoffMs...86_400_000)
        timeoutMs = try int(.timeoutMs, 10_000, 1...120_000)
        leaseMs = try int(.leaseMs, 60_000, 1000...3_600_000)
        pollMs = try int(.pollMs, 1000, 10...60_000)
        maxListed = try int(.maxListed, 20, 1...1000)
        providers = try c.decodeIfPresent(Providers.self, forKey: .providers) ?? Providers()
        guard !providers.platforms.isEmpty else {
            throw DecodingError.dataCorruptedError(
                forKey: .providers, in: c, debugDescription: "configure at least one of webhook, webpush, apns, fcm (for example providers: { webhook: {} })")
        }
        for (key, url) in providers.baseURLs where !allowHTTP && !url.lowercased().hasPrefix("https://") {
            throw DecodingError.dataCorruptedError(
                forKey: .providers, in: c, debugDescription: "providers.\(key) must be an https:// URL (plain http only with allow_http: true); was '\(url)'")
        }
    }
}

extension PushSettings.Providers {
    /// Every configured base URL, by its dotted key, for the `allow_http` check.
    var baseURLs: [(String, String)] {
        var urls: [(String, String)] = []
        if let apns {
            urls.append(("apns.production_url", apns.productionURL))
            urls.append(("apns.sandbox_url", apns.sandboxURL))
        }
        if let fcm {
            urls.append(("fcm.base_url", fcm.baseURL))
            urls.append(("fcm.service_account_file's token_uri", fcm.account.tokenURI))
        }
        return urls
    }
}

/// `providers.webhook`: POSTs the notification's JSON to the target's `url`.
///
/// | key | type | default | constraint |
/// |---|---|---|---|
/// | `secret` | string (secret) | none | not empty; signs each POST (`X-ChatGateway-Signature: sha256=<hex HMAC-SHA256 of the body>`) |
/// | `allowed_hosts` | [string] | none (any host) | host names a target's `url` may name (exact, case-insensitive); others are refused at registration and not sent to |
public struct WebhookProviderSettings: Codable, Sendable {
    public var secret: Secret?
    public var allowedHosts: [String]?

    public init(secret: Secret? = nil, allowedHosts: [String]? = nil) {
        self.secret = secret
        self.allowedHosts = allowedHosts
    }

    enum CodingKeys: String, CodingKey {
        case secret
        case allowedHosts = "allowed_hosts"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        secret = try c.decodeIfPresent(Secret.self, forKey: .secret)
        if let secret, secret.value.isEmpty {
            throw DecodingError.dataCorruptedError(forKey: .secret, in: c, debugDescription: "must not be empty (leave the key out for unsigned requests)")
        }
        allowedHosts = try c.decodeIfPresent([String].self, forKey: .allowedHosts)?.map { $0.lowercased() }
        if let allowedHosts, allowedHosts.isEmpty || allowedHosts.contains(where: \.isEmpty) {
            throw DecodingError.dataCorruptedError(
                forKey: .allowedHosts, in: c, debugDescription: "must list at least one host name (leave the key out to allow any)")
        }
    }

    /// Whether a target's url may be notified.
    func allows(_ url: String) -> Bool {
        guard let allowedHosts else { return true }
        guard let host = PushRegistration.host(of: url) else { return false }
        return allowedHosts.contains(host)
    }
}
