import GatewayCore

/// Settings of the `ratelimit` stage: token buckets per user and per client IP.
///
/// | key | type | default | constraint |
/// |---|---|---|---|
/// | `per_user` | `{rate, burst}` | none | a bucket per user id (`rate` tokens per second, floats allowed, > 0; `burst` the bucket's size, int 1...1000000, default `rate` rounded up) |
/// | `per_ip` | `{rate, burst}` | none | the same per client IP address (frames without one, such as in-process calls, skip it) |
/// | `max_tracked` | int | 100000 | 100...10000000: users and IPs tracked at once; when full, the least recently seen is forgotten |
///
/// At least one of `per_user` and `per_ip` must be set. A frame passes when every bucket that
/// applies to it holds a token; it then takes one from each.
public struct RateLimitSettings: Codable, Sendable {
    /// One token bucket's shape.
    public struct Limit: Codable, Sendable, Hashable {
        /// Tokens added per second.
        public var rate: Double
        /// The bucket's size: how many frames may arrive at once after a quiet spell.
        public var burst: Int

        enum CodingKeys: String, CodingKey { case rate, burst }

        public init(rate: Double, burst: Int? = nil) {
            self.rate = rate
            self.burst = burst ?? Self.defaultBurst(rate)
        }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            rate = try c.decode(Double.self, forKey: .rate)
            guard rate.isFinite, rate > 0, rate <= 1_000_000 else {
                throw DecodingError.dataCorruptedError(forKey: .rate, in: c, debugDescription: "must be a number of tokens per second above 0 and at most 1000000 (was \(rate))")
            }
            burst = try c.decodeIfPresent(Int.self, forKey: .burst) ?? Self.defaultBurst(rate)
            guard (1...1_000_000).contains(burst) else {
                throw DecodingError.dataCorruptedError(forKey: .burst, in: c, debugDescription: "must be 1...1000000 (was \(burst))")
            }
        }

        static func defaultBurst(_ rate: Double) -> Int { max(1, Int(min(rate, 1_000_000).rounded(.up))) }
    }

    public var perUser: Limit?
    public var perIP: Limit?
    public var maxTracked: Int

    enum CodingKeys: String, CodingKey {
        case perUser = "per_user"
        case perIP = "per_ip"
        case maxTracked = "max_tracked"
    }

    public static let defaultMaxTracked = 100_000

    public init(perUser: Limit? = nil, perIP: Limit? = nil, maxTracked: Int = defaultMaxTracked) {
        self.perUser = perUser
        self.perIP = perIP
        self.maxTracked = maxTracked
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        perUser = try c.decodeIfPresent(Limit.self, forKey: .perUser)
        perIP = try c.decodeIfPresent(Limit.self, forKey: .perIP)
        maxTracked = try c.decodeIfPresent(Int.self, forKey: .maxTracked) ?? Self.defaultMaxTracked
        guard (100...10_000_000).contains(maxTracked) else {
            throw DecodingError.dataCorruptedError(forKey: .maxTracked, in: c, debugDescription: "must be 100...10000000 (was \(maxTracked))")
        }
        if perUser == nil, perIP == nil {
            throw DecodingError.dataCorrupted(
                .init(codingPath: c.codingPath, debugDescription: "set 'per_user', 'per_ip' or both (for example per_user: { rate: 5, burst: 10 })"))
        }
    }
}
