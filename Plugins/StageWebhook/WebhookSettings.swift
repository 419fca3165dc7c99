import Foundation
import GatewayCore

/// Settings of the `webhook` stage (PROTOCOL.md section 8).
///
/// | key | type | default | constraint |
/// |---|---|---|---|
/// | `url` | string | required | an `http://` or `https://` URL with a host |
/// | `timeout_ms` | int | 1000 | deprecated: set `timeout_ms` on the pipeline entry. 1...60000: the whole call; the entry's key wins |
/// | `on_error` | string | `reject` | deprecated: set `on_error` on the pipeline entry. `reject` or `continue`; the entry's key wins |
/// | `secret` | string (secret) | none | not empty; signs each request (`X-ChatGateway-Signature: sha256=<hex HMAC-SHA256 of the body>`) |
/// | `on` | [frame type] | none | deprecated: the entry's `on:` decides. `send`, `typing`, `read`, `presence.subscribe`; when set, the stage sees only these of the entry's `on:`, which must include them |
/// | `breaker.failures` | int | 5 | 1...1000: consecutive failures that open the circuit breaker |
/// | `breaker.open_ms` | int | 10000 | 1...3600000: how long it stays open before one trial call |
/// | `max_request_bytes` | int | 1048576 | 1024...16777216: a larger request is not sent (`on_error` applies) |
/// | `max_response_bytes` | int | 1048576 | 1024...16777216: a larger answer is malformed |
/// | `max_connections` | int | 16 | 1...1024: pooled connections to the service |
///
/// `timeout_ms`, `on_error` and `on` under `settings:` are the stage's old copies of the
/// pipeline entry's keys (docs/STAGES.md, "Deadlines and failures"). They are still accepted and
/// migrated: they become this stage's defaults, the entry's own keys override them, and the
/// gateway logs a deprecation warning when the pipeline is built.
public struct WebhookSettings: Codable, Sendable {
    public typealias OnError = StagePolicy.OnError

    /// The circuit breaker: while open, `on_error` applies at once and the service is not called.
    public struct Breaker: Codable, Sendable, Hashable {
        public var failures: Int
        public var openMs: Int

        enum CodingKeys: String, CodingKey {
            case failures
            case openMs = "open_ms"
        }

        public init(failures: Int = 5, openMs: Int = 10_000) {
            self.failures = failures
            self.openMs = openMs
        }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            failures = try c.decodeIfPresent(Int.self, forKey: .failures) ?? 5
            guard (1...1000).contains(failures) else {
                throw DecodingError.dataCorruptedError(forKey: .failures, in: c, debugDescription: "must be 1...1000 (was \(failures))")
            }
            openMs = try c.decodeIfPresent(Int.self, forKey: .openMs) ?? 10_000
            guard (1...3_600_000).contains(openMs) else {
                throw DecodingError.dataCorruptedError(forKey: .openMs, in: c, debugDescription: "must be 1...3600000 (was \(openMs))")
            }
        }
    }

    public var url: String
    public var timeoutMs: Int
    public var onError: OnError
    public var secret: Secret?
    public var on: Set<FrameKind>?
    public var breaker: Breaker
    public var maxRequestBytes: Int
    public var maxResponseBytes: Int
    public var maxConnections: Int
    /// The deprecated keys this block set (`timeout_ms`, `on_error`, `on`), for the warning.
    public var deprecatedKeys: [String] = []

    enum CodingKeys: String, CodingKey {
        case url
        case timeoutMs = "timeout_ms"
        case onError = "on_error"
        case secret, on, breaker
        case maxRequestBytes = "max_request_bytes"
        case maxResponseBytes = "max_response_bytes"
        case maxConnections = "max_connections"
    }

    /// The frame types a webhook may take, as for a pipeline entry's `on:`.
    static let allowedKinds: Set<FrameKind> = [.send, .typing, .read, .presenceSubscribe]

    public init(
        url: String, timeoutMs: Int = 1000, onError: OnError = .reject, secret: Secret? = nil, on: Set<FrameKind>? = nil,
        breaker: Breaker = Breaker(), maxRequestBytes: Int = 1 << 20, maxResponseBytes: Int = 1 << 20, maxConnections: Int = 16
    ) {
        self.url = url
        self.timeoutMs = timeoutMs
        self.onError = onError
        self.secret = secret
        self.on = on
        self.breaker = breaker
        self.maxRequestBytes = maxRequestBytes
        self.maxResponseBytes = maxResponseBytes
        self.maxConnections = maxConnections
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        url = try c.decode(String.self, forKey: .url)
        guard let parsed = URL(string: url), ["http", "https"].contains(parsed.scheme?.lowercased() ?? ""), !(parsed.host ?? "").isEmpty else {
            throw DecodingError.dataCorruptedError(forKey: .url, in: c, debugDescription: "must be an http:// or https:// URL with a host (was '\(url)')")
        }
        timeoutMs = try c.decodeIfPresent(Int.self, forKey: .timeoutMs) ?? 1000
        guard (1...60_000).contains(timeoutMs) else {
            throw DecodingError.dataCorruptedError(forKey: .timeoutMs, in: c, debugDescription: "must be 1...60000 (was \(timeoutMs))")
        }
        let onErrorName = try c.decodeIfPresent(String.self, forKey: .onError) ?? OnError.reject.rawValue
        guard let onError = OnError(rawValue: onErrorName) else {
            throw DecodingError.dataCorruptedError(forKey: .onError, in: c, debugDescription: "must be reject or continue (was '\(onErrorName)')")
        }
        self.onError = onError
        secret = try c.decodeIfPresent(Secret.self, forKey: .secret)
        if let secret, secret.value.isEmpty {
            throw DecodingError.dataCorruptedError(forKey: .secret, in: c, debugDescription: "must not be empty (leave the key out for unsigned requests)")
        }
        if let kinds = try c.decodeIfPresent([FrameKind].self, forKey: .on) {
            guard !kinds.isEmpty, kinds.allSatisfy(Self.allowedKinds.contains) else {
                throw DecodingError.dataCorruptedError(forKey: .on, in: c, debugDescription: "may list send, typing, read, presence.subscribe (at least one)")
            }
            on = Set(kinds)
        } else {
            on = nil
        }
        breaker = try c.decodeIfPresent(Breaker.self, forKey: .breaker) ?? Breaker()
        maxRequestBytes = try c.decodeIfPresent(Int.self, forKey: .maxRequestBytes) ?? 1 << 20
        guard (1024...16_777_216).contains(maxRequestBytes) else {
            throw DecodingError.dataCorruptedError(forKey: .maxRequestBytes, in: c, debugDescription: "must be 1024...16777216 (was \(maxRequestBytes))")
        }
        maxResponseBytes = try c.decodeIfPresent(Int.self, forKey: .maxResponseBytes) ?? 1 << 20
        guard (1024...16_777_216).contains(maxResponseBytes) else {
            throw DecodingError.dataCorruptedError(forKey: .maxResponseBytes, in: c, debugDescription: "must be 1024...16777216 (was \(maxResponseBytes))")
        }
        maxConnections = try c.decodeIfPresent(Int.self, forKey: .maxConnections) ?? 16
        guard (1...1024).contains(maxConnections) else {
            throw DecodingError.dataCorruptedError(forKey: .maxConnections, in: c, debugDescription: "must be 1...1024 (was \(maxConnections))")
        }
        deprecatedKeys = [CodingKeys.timeoutMs, .onError, .on].filter(c.contains).map(\.stringValue)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(url, forKey: .url)
        try c.encode(timeoutMs, forKey: .timeoutMs)
        try c.encode(onError, forKey: .onError)
        try c.encodeIfPresent(secret, forKey: .secret)
        try c.encodeIfPresent(on.map { $0.map(\.rawValue).sorted() }, forKey: .on)
        try c.encode(breaker, forKey: .breaker)
        try c.encode(maxRequestBytes, forKey: .maxRequestBytes)
        try c.encode(maxResponseBytes, forKey: .maxResponseBytes)
        try c.encode(maxConnections, forKey: .maxConnections)
    }
}
