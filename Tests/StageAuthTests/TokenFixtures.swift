import Crypto
import CryptoExtras
import Foundation
import GatewayCore
import GatewayTesting
import JWTKit
import StageAuth
import Testing

/// Keys and token builders shared by the auth tests. Keys are made once per test process.
enum Fixtures {
    static let hs256Secret = "hs256-test-secret-0123456789abcdef"  // 34 bytes
    static let hs384Secret = String(repeating: "s384-key", count: 6)  // 48 bytes
    static let hs512Secret = String(repeating: "s512-key", count: 8)  // 64 bytes

    static let rsa: JWTKit.Insecure.RSA.PrivateKey = {
        do {
            return try JWTKit.Insecure.RSA.PrivateKey(backing: _RSA.Signing.PrivateKey(keySize: .bits2048))
        } catch {
            fatalError("RSA key generation failed: \(error)")
        }
    }()
    static let es256 = ES256PrivateKey()
    static let eddsa: EdDSA.PrivateKey = {
        do {
            return try EdDSA.PrivateKey()
        } catch {
            fatalError("Ed25519 key generation failed: \(error)")
        }
    }()

    static var rsaPublicPEM: String { rsa.publicKey.pemRepresentation }

    /// The `TestClock`'s default time (2026-01-01T00:00:00Z) in seconds.
    static let nowSeconds: Int64 = TestClock().nowMillis() / 1000

    static func stage(_ settings: AuthSettings, clock: TestClock = TestClock()) throws -> AuthStage {
        try AuthStage(settings: settings, clock: clock)
    }

    /// Settings with only the HS256 secret.
    static func hs256Settings(
        leeway: Int = 30, issuer: String? = nil, audience: String? = nil, requireExp: Bool = true
    ) -> AuthSettings {
        AuthSettings(
            hs256Secret: Secret(hs256Secret), leewaySeconds: leeway, issuer: issuer, audience: audience, requireExp: requireExp)
    }
}

/// Claims to sign with jwt-kit; nil members are left out of the token.
struct TestClaims: JWTPayload {
    var sub: String? = "alice"
    var exp: Int64? = Fixtures.nowSeconds + 3600
    var nbf: Int64?
    var iss: String?
    var aud: [String]?

    func verify(using algorithm: some JWTAlgorithm) async throws {}

    func encode(to encoder: any Encoder) throws {
        enum Keys: String, CodingKey { case sub, exp, nbf, iss, aud }
        var container = encoder.container(keyedBy: Keys.self)
        try container.encodeIfPresent(sub, forKey: .sub)
        try container.encodeIfPresent(exp, forKey: .exp)
        try container.encodeIfPresent(nbf, forKey: .nbf)
        try container.encodeIfPresent(iss, forKey: .iss)
        // One audience as a string, several as an array: both forms are in use.
        if let aud, aud.count == 1 {
            try container.encode(aud[0], forKey: .aud)
        } else {
            try container.encodeIfPresent(aud, forKey: .aud)
        }
    }
}

/// A key that signs test tokens.
enum SigningKey: Sendable {
    case hmac(String, DigestAlgorithm)
    case rsa(JWTKit.Insecure.RSA.PrivateKey)
    case es256(ES256PrivateKey)
    case eddsa(EdDSA.PrivateKey)

    func sign(_ claims: TestClaims = TestClaims(), header: JWTHeader = JWTHeader()) async throws -> String {
        let keys = JWTKeyCollection()
        switch self {
        case .hmac(let secret, let digest): await keys.add(hmac: HMACKey(from: secret), digestAlgorithm: digest)
        case .rsa(let key): await keys.add(rsa: key, digestAlgorithm: .sha256)
        case .es256(let key): await keys.add(ecdsa: key)
        case .eddsa(let key): await keys.add(eddsa: key)
        }
        return try await keys.sign(claims, header: header)
    }
}

/// Tokens written by hand, for headers and claims jwt-kit would not produce.
enum Handmade {
    static func base64URL(_ bytes: some Sequence<UInt8>) -> String {
        Data(bytes).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    static func base64URL(_ text: String) -> String { base64URL(Array(text.utf8)) }

    /// `header.payload.signature` from JSON texts, with the given signature segment.
    static func token(header: String, payload: String, signature: String) -> String {
        "\(base64URL(header)).\(base64URL(payload)).\(signature)"
    }

    /// A correctly HS256-signed token from raw JSON texts.
    static func hs256(header: String = #"{"alg":"HS256","typ":"JWT"}"#, payload: String, secret: String = Fixtures.hs256Secret)
        -> String
    {
        let input = "\(base64URL(header)).\(base64URL(payload))"
        let mac = HMAC<SHA256>.authenticationCode(for: Array(input.utf8), using: SymmetricKey(data: Array(secret.utf8)))
        return "\(input).\(base64URL(Array(mac)))"
    }
}

/// The error `authenticate` throws, or nil when it accepts the token. Also checks that the
/// error's message never repeats the token.
func rejection(_ stage: AuthStage, _ token: String, sourceLocation: SourceLocation = #_sourceLocation) async -> GatewayError? {
    do {
        _ = try await stage.authenticate(token: token)
        return nil
    } catch {
        if token.count > 8 {
            #expect(!error.message.contains(token), "the error echoes the token", sourceLocation: sourceLocation)
            for segment in token.split(separator: ".") where segment.count > 8 {
                #expect(!error.message.contains(segment), "the error echoes a token segment", sourceLocation: sourceLocation)
            }
        }
        return error
    }
}
