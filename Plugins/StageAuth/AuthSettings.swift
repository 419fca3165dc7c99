import GatewayCore
import JWTKit

/// Settings of the `auth` stage: which keys verify tokens and how claims are checked.
///
/// ```yaml
/// - stage: auth
///   settings: { hs256_secret: ${JWT_SECRET}, leeway_s: 30, audience: chat }
/// ```
///
/// | key | type | default | constraint |
/// |---|---|---|---|
/// | `hs256_secret` | secret string (its UTF-8 bytes are the key) | none | at least 32 bytes |
/// | `hs384_secret` | secret string | none | at least 48 bytes |
/// | `hs512_secret` | secret string | none | at least 64 bytes |
/// | `rs256_public_key` | PEM text (`-----BEGIN PUBLIC KEY-----`) | none | an RSA public key of at least 2048 bits |
/// | `es256_public_key` | PEM text | none | a P-256 public key |
/// | `eddsa_public_key` | PEM text, or the raw 32-byte Ed25519 public key (the JWK's `x`) in base64url or base64, padding optional | none | an Ed25519 public key |
/// | `jwks_file` | path | none | a readable JWKS (RFC 7517) JSON file of public keys, read when the stage is built (at start and on reload); relative to the working directory |
/// | `leeway_s` | integer seconds | 30 | 0...600; tolerance for `exp` and `nbf` |
/// | `issuer` | string | none | when set, the token's `iss` must equal it |
/// | `audience` | string | none | when set, the token's `aud` (a string or an array) must contain it |
/// | `require_exp` | bool | true | when true, a token without `exp` is refused |
///
/// At least one of the key settings (`hs*_secret`, `*_public_key`, `jwks_file`) is required.
/// Each configured key allows exactly its algorithm (`HS256`, `HS384`, `HS512`, `RS256`,
/// `ES256`, `EdDSA`); a JWKS key allows the `alg` it declares, or the usual one for its type
/// (`RS256` for RSA, `ES256`/`ES384`/`ES512` by curve, `EdDSA` for Ed25519). JWKS keys need a
/// `kid`, must not contain private parts, and keys whose `use` is not `sig` are skipped; a
/// token carrying a `kid` is then verified with that JWKS key only.
///
/// Invalid values are reported at their key (unknown keys by the config loader); secrets
/// render as `<redacted>`.
public struct AuthSettings: Codable, Sendable {
    public var hs256Secret: Secret?
    public var hs384Secret: Secret?
    public var hs512Secret: Secret?
    public var rs256PublicKey: String?
    public var es256PublicKey: String?
    public var eddsaPublicKey: String?
    public var jwksFile: String?
    /// Tolerance for `exp` and `nbf`, in seconds.
    public var leewaySeconds: Int
    public var issuer: String?
    public var audience: String?
    public var requireExp: Bool

    public static let defaultLeewaySeconds = 30
    public static let leewayRange = 0...600

    enum CodingKeys: String, CodingKey {
        case hs256Secret = "hs256_secret"
        case hs384Secret = "hs384_secret"
        case hs512Secret = "hs512_secret"
        case rs256PublicKey = "rs256_public_key"
        case es256PublicKey = "es256_public_key"
        case eddsaPublicKey = "eddsa_public_key"
        case jwksFile = "jwks_file"
        case leewaySeconds = "leeway_s"
        case issuer
        case audience
        case requireExp = "require_exp"
    }

    /// Settings for code and tests; `AuthStage.init` validates them as decoding does.
    public init(
        hs256Secret: Secret? = nil, hs384Secret: Secret? = nil, hs512Secret: Secret? = nil,
        rs256PublicKey: String? = nil, es256PublicKey: String? = nil, eddsaPublicKey: String? = nil,
        jwksFile: String? = nil, leewaySeconds: Int = AuthSettings.defaultLeewaySeconds,
        issuer: String? = nil, audience: String? = nil, requireExp: Bool = true
    ) {
        self.hs256Secret = hs256Secret
        self.hs384Secret = hs384Secret
        self.hs512Secret = hs512Secret
        self.rs256PublicKey = rs256PublicKey
        self.es256PublicKey = es256PublicKey
        self.eddsaPublicKey = eddsaPublicKey
        self.jwksFile = jwksFile
        self.leewaySeconds = leewaySeconds
        self.issuer = issuer
        self.audience = audience
        self.requireExp = requireExp
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        hs256Secret = try container.decodeIfPresent(Secret.self, forKey: .hs256Secret)
        hs384Secret = try container.decodeIfPresent(Secret.self, forKey: .hs384Secret)
        hs512Secret = try container.decodeIfPresent(Secret.self, forKey: .hs512Secret)
        rs256PublicKey = try container.decodeIfPresent(String.self, forKey: .rs256PublicKey)
        es256PublicKey = try container.decodeIfPresent(String.self, forKey: .es256PublicKey)
        eddsaPublicKey = try container.decodeIfPresent(String.self, forKey: .eddsaPublicKey)
        jwksFile = try container.decodeIfPresent(String.self, forKey: .jwksFile)
        leewaySeconds = try container.decodeIfPresent(Int.self, forKey: .leewaySeconds) ?? Self.defaultLeewaySeconds
        issuer = try container.decodeIfPresent(String.self, forKey: .issuer)
        audience = try container.decodeIfPresent(String.self, forKey: .audience)
        requireExp = try container.decodeIfPresent(Bool.self, forKey: .requireExp) ?? true

        do {
            try validate()
        } catch {
            if let key = error.key.flatMap(CodingKeys.init(stringValue:)) {
                throw DecodingError.dataCorruptedError(forKey: key, in: container, debugDescription: error.reason)
            }
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: error.reason))
        }
    }

    /// Checks every value that can be checked without reading files: ranges, secret lengths,
    /// and the public keys (parsed), and that at least one key source is configured.
    ///
    /// - Returns: the inline keys, parsed.
    @discardableResult
    func validate() throws(AuthSettingsError) -> [VerificationKey] {
        guard Self.leewayRange.contains(leewaySeconds) else {
            throw AuthSettingsError(
                key: CodingKeys.leewaySeconds.stringValue,
                reason: "must be \(Self.leewayRange.lowerBound)...\(Self.leewayRange.upperBound) (was \(leewaySeconds))")
        }
        for (key, value) in [(CodingKeys.issuer, issuer), (.audience, audience), (.jwksFile, jwksFile)] {
            if let value, value.isEmpty {
                throw AuthSettingsError(key: key.stringValue, reason: "must not be empty")
            }
        }
        let keys = try staticKeys()
        guard hasKeySource else {
            throw AuthSettingsError(
                key: nil,
                reason: "no key configured: set at least one of "
                    + [CodingKeys.hs256Secret, .hs384Secret, .hs512Secret, .rs256PublicKey, .es256PublicKey, .eddsaPublicKey, .jwksFile]
                    .map(\.stringValue).joined(separator: ", "))
        }
        return keys
    }

    var hasKeySource: Bool {
        hs256Secret != nil || hs384Secret != nil || hs512Secret != nil || rs256PublicKey != nil || es256PublicKey != nil
            || eddsaPublicKey != nil || jwksFile != nil
    }

    /// The keys configured inline (everything but `jwks_file`), parsed.
    func staticKeys() throws(AuthSettingsError) -> [VerificationKey] {
        var keys: [VerificationKey] = []
        let secrets: [(CodingKeys, Secret?, VerificationKey.HMACVariant)] = [
            (.hs256Secret, hs256Secret, .hs256), (.hs384Secret, hs384Secret, .hs384), (.hs512Secret, hs512Secret, .hs512),
        ]
        for (key, secret, variant) in secrets {
            guard let secret else { continue }
            keys.append(try VerificationKey.hmac(secret: secret.value, variant: variant, settingsKey: key.stringValue))
        }
        if let pem = rs256PublicKey {
            keys.append(try VerificationKey.rs256(pem: pem, settingsKey: CodingKeys.rs256PublicKey.stringValue))
        }
        if let pem = es256PublicKey {
            keys.append(try VerificationKey.es256(pem: pem, settingsKey: CodingKeys.es256PublicKey.stringValue))
        }
        if let text = eddsaPublicKey {
            keys.append(try VerificationKey.eddsa(text: text, settingsKey: CodingKeys.eddsaPublicKey.stringValue))
        }
        return keys
    }
}
