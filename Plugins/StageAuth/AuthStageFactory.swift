import GatewayCore
import JWTKit

/// The `auth` stage's factory, and a minter of development tokens for `chatgate token`.
public enum AuthStageFactory {
    /// Builds ``AuthStage`` from an ``AuthSettings`` block, with the pipeline's clock.
    public static let factory = StageFactory(kind: "auth", settings: AuthSettings.self) { settings, context in
        if context.exposure == .network {
            let secrets = [("hs256_secret", settings.hs256Secret), ("hs384_secret", settings.hs384Secret), ("hs512_secret", settings.hs512Secret)]
            for case (let key, let secret?) in secrets where secret.isPublishedDefault {
                throw AuthSettingsError(
                    key: key,
                    reason: "this is the published development secret and the public listener is reachable from the network: "
                        + "set JWT_SECRET to a secret of your own (openssl rand -hex 32), or listen on 127.0.0.1")
            }
        }
        return try AuthStage(settings: settings, clock: context.clock)
    }

    /// Why a development token could not be minted.
    public struct MintingError: Error, Sendable, Hashable, CustomStringConvertible {
        public let reason: String
        public var description: String { reason }
    }

    /// Longest lifetime of a minted token: one year.
    public static let maxTokenTTLSeconds = 366 * 24 * 3600

    /// Mints an HS256 token for `user`, valid from `now` for `ttlSeconds`, for development and
    /// tests (`chatgate token alice --ttl 3600`). The claims are `sub`, `iat`, `exp`, and `iss`
    /// and `aud` when given.
    ///
    /// - Parameters:
    ///   - secret: the `hs256_secret` of the gateway's `auth` stage (at least 32 bytes).
    ///   - now: milliseconds since the Unix epoch.
    public static func mintHS256(
        secret: String, user: String, ttlSeconds: Int, now: Int64, issuer: String?, audience: String?
    ) async throws -> String {
        guard secret.utf8.count >= 32 else {
            throw MintingError(reason: "the HS256 secret must be at least 32 bytes (was \(secret.utf8.count))")
        }
        guard Address.isValidID(user) else {
            throw MintingError(reason: "user must be 1 to 64 characters of [A-Za-z0-9_.@-]")
        }
        guard (1...maxTokenTTLSeconds).contains(ttlSeconds) else {
            throw MintingError(reason: "ttl must be 1...\(maxTokenTTLSeconds) seconds (was \(ttlSeconds))")
        }
        let issuedAt = now / 1000
        let claims = MintedClaims(sub: user, iat: issuedAt, exp: issuedAt + Int64(ttlSeconds), iss: issuer, aud: audience)
        let keys = await JWTKeyCollection().add(hmac: HMACKey(from: secret), digestAlgorithm: .sha256)
        return try await keys.sign(claims)
    }

    /// Mints an HS256 token with the secret, issuer and audience of an `auth` stage's settings.
    public static func mintHS256(settings: AuthSettings, user: String, ttlSeconds: Int, now: Int64) async throws -> String {
        try await mintHS256(
            secret: hs256Secret(in: settings), user: user, ttlSeconds: ttlSeconds, now: now, issuer: settings.issuer,
            audience: settings.audience)
    }

    /// The `hs256_secret` of an `auth` stage's settings; throws when there is none, since only
    /// HS256 tokens can be minted from the gateway's own config.
    public static func hs256Secret(in settings: AuthSettings) throws -> String {
        guard let secret = settings.hs256Secret else {
            throw MintingError(reason: "the auth stage has no hs256_secret: tokens for its other keys come from their issuer")
        }
        return secret.value
    }
}

/// The claims of a minted token.
private struct MintedClaims: JWTPayload {
    var sub: String
    var iat: Int64
    var exp: Int64
    var iss: String?
    var aud: String?

    func verify(using algorithm: some JWTAlgorithm) async throws {}
}
