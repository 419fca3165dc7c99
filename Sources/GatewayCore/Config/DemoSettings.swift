/// `demo: { enabled, allow_remote, token_ttl_s }`: the demo chat page at `GET /` and the
/// development tokens it signs in with (`POST /demo/token`).
///
/// Off by default: with it on, anyone who reaches the public port can sign in as any user.
/// The gateway refuses to start with it on a listener beyond loopback unless `allow_remote`
/// says so explicitly.
public struct DemoSettings: Decodable, Sendable {
    /// Serve the demo page at `GET /` and mint development tokens at `POST /demo/token`.
    public var enabled: Bool = false
    /// Allow `enabled` on a public listener that is not loopback (127.0.0.1, ::1, localhost).
    public var allowRemote: Bool = false
    /// Lifetime of a minted demo token, seconds (60...86400).
    public var tokenTTLSeconds: Int = 3600

    enum CodingKeys: String, CodingKey {
        case enabled
        case allowRemote = "allow_remote"
        case tokenTTLSeconds = "token_ttl_s"
    }

    public init(enabled: Bool = false, allowRemote: Bool = false, tokenTTLSeconds: Int = 3600) {
        self.enabled = enabled
        self.allowRemote = allowRemote
        self.tokenTTLSeconds = tokenTTLSeconds
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        enabled = try c.decodeIfPresent(Bool.self, forKey: .enabled) ?? false
        allowRemote = try c.decodeIfPresent(Bool.self, forKey: .allowRemote) ?? false
        tokenTTLSeconds = try c.decodeIfPresent(Int.self, forKey: .tokenTTLSeconds) ?? 3600
        try require((60...86400).contains(tokenTTLSeconds), c, .tokenTTLSeconds, "must be 60...86400 (was \(tokenTTLSeconds))")
    }

    /// Refuses demo mode on a listener beyond loopback without `allow_remote: true`.
    func validate(publicHost host: String, codingPath: [any CodingKey]) throws {
        let loopback = host == "127.0.0.1" || host == "::1" || host == "localhost"
        if enabled && !loopback && !allowRemote {
            throw DecodingError.dataCorrupted(.init(
                codingPath: codingPath + [CodingKeys.enabled],
                debugDescription: "demo mode lets anyone sign in as any user; the public listener is not on loopback (\(host)): "
                    + "bind listen.public.host to 127.0.0.1 or set demo.allow_remote: true"))
        }
    }
}
