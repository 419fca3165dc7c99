import JWTKit

/// One key that verifies tokens of exactly one algorithm, parsed from the settings or the JWKS
/// file when the stage is built, so a bad key is a config error rather than a failed login.
struct VerificationKey: Sendable {
    enum HMACVariant: Sendable {
        case hs256, hs384, hs512
    }

    enum Material: Sendable {
        case hmac(HMACKey, DigestAlgorithm)
        case rsa(Insecure.RSA.PublicKey, DigestAlgorithm)
        case pss(Insecure.RSA.PublicKey, DigestAlgorithm)
        case es256(ES256PublicKey)
        case es384(ES384PublicKey)
        case es512(ES512PublicKey)
        case eddsa(EdDSA.PublicKey)
    }

    /// The JWS `alg` this key verifies (`HS256`, `RS256`, `EdDSA`...), compared case-sensitively.
    let algorithm: String
    let material: Material

    /// A jwt-kit collection holding this key alone, as its default key. jwt-kit falls back to the
    /// default key for a missing or unknown `kid` and does not match the header's `alg` to the
    /// key, so `AuthStage` picks the key itself and gives each key a collection of its own.
    func makeCollection() async -> JWTKeyCollection {
        let collection = JWTKeyCollection()
        switch material {
        case .hmac(let key, let digest): await collection.add(hmac: key, digestAlgorithm: digest)
        case .rsa(let key, let digest): await collection.add(rsa: key, digestAlgorithm: digest)
        case .pss(let key, let digest): await collection.add(pss: key, digestAlgorithm: digest)
        case .es256(let key): await collection.add(ecdsa: key)
        case .es384(let key): await collection.add(ecdsa: key)
        case .es512(let key): await collection.add(ecdsa: key)
        case .eddsa(let key): await collection.add(eddsa: key)
        }
        return collection
    }

    // MARK: Keys from the settings

    static func hmac(secret: String, variant: HMACVariant, settingsKey: String) throws(AuthSettingsError) -> VerificationKey {
        let (name, digest, minimum): (String, DigestAlgorithm, Int) =
            switch variant {
            case .hs256: ("HS256", .sha256, 32)
            case .hs384: ("HS384", .sha384, 48)
            case .hs512: ("HS512", .sha512, 64)
            }
        // jwt-kit asserts on shorter keys (a debug build crashes, a release build accepts them).
        let length = secret.utf8.count
        guard length >= minimum else {
            throw AuthSettingsError(key: settingsKey, reason: "must be at least \(minimum) bytes (was \(length))")
        }
        return VerificationKey(algorithm: name, material: .hmac(HMACKey(from: secret), digest))
    }

    static func rs256(pem: String, settingsKey: String) throws(AuthSettingsError) -> VerificationKey {
        try rejectPrivatePEM(pem, settingsKey: settingsKey)
        do {
            return VerificationKey(algorithm: "RS256", material: .rsa(try Insecure.RSA.PublicKey(pem: pem), .sha256))
        } catch {
            throw AuthSettingsError(
                key: settingsKey, reason: "not a PEM RSA public key of at least 2048 bits (-----BEGIN PUBLIC KEY-----)")
        }
    }

    static func es256(pem: String, settingsKey: String) throws(AuthSettingsError) -> VerificationKey {
        try rejectPrivatePEM(pem, settingsKey: settingsKey)
        do {
            return VerificationKey(algorithm: "ES256", material: .es256(try ES256PublicKey(pem: pem)))
        } catch {
            throw AuthSettingsError(key: settingsKey, reason: "not a PEM P-256 public key (-----BEGIN PUBLIC KEY-----)")
        }
    }

    /// PEM (`-----BEGIN PUBLIC KEY-----`), or the raw 32-byte public key in base64url or base64.
    static func eddsa(text: String, settingsKey: String) throws(AuthSettingsError) -> VerificationKey {
        try rejectPrivatePEM(text, settingsKey: settingsKey)
        if text.contains("-----BEGIN") {
            do {
                return VerificationKey(algorithm: "EdDSA", material: .eddsa(try EdDSA.PublicKey(pem: text)))
            } catch {
                throw AuthSettingsError(key: settingsKey, reason: "not a PEM Ed25519 public key (-----BEGIN PUBLIC KEY-----)")
            }
        }
        let trimmed = text.utf8.filter { $0 != UInt8(ascii: " ") && $0 != UInt8(ascii: "\n") && $0 != UInt8(ascii: "\r") }
        guard let raw = Base64URL.decode(trimmed), raw.count == 32, let key = try? ed25519(x: raw) else {
            throw AuthSettingsError(
                key: settingsKey, reason: "must be a PEM Ed25519 public key or its raw 32 bytes in base64url or base64")
        }
        return VerificationKey(algorithm: "EdDSA", material: .eddsa(key))
    }

    /// jwt-kit takes the key as base64url text without padding, as in a JWK's `x`.
    private static func ed25519(x raw: [UInt8]) throws -> EdDSA.PublicKey {
        try EdDSA.PublicKey(x: Base64URL.encode(raw), curve: .ed25519)
    }

    private static func rejectPrivatePEM(_ text: String, settingsKey: String) throws(AuthSettingsError) {
        if text.contains("PRIVATE KEY") {
            throw AuthSettingsError(key: settingsKey, reason: "is a private key: give the public key only")
        }
    }
}
