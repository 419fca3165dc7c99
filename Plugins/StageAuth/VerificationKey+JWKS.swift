import GatewayCore
import JWTKit

extension VerificationKey {
    /// Private members of a JWK (RFC 7518 section 6): a verifier never needs them.
    private static let privateMembers = ["d", "p", "q", "dp", "dq", "qi", "oth"]

    /// The signing keys of a JWKS document, by `kid`. Keys whose `use` is not `sig` are skipped;
    /// anything else that cannot verify tokens is an error naming the key.
    static func jwks(_ document: [UInt8], settingsKey: String) throws(AuthSettingsError) -> [String: VerificationKey] {
        func fail(_ reason: String) -> AuthSettingsError { AuthSettingsError(key: settingsKey, reason: reason) }

        guard let root = try? JSONParser.parse(document, maxDepth: 8), let keys = root["keys"]?.arrayValue else {
            throw fail("not a JWKS: expected a JSON object {\"keys\": [...]}")
        }
        var result: [String: VerificationKey] = [:]
        for (index, value) in keys.enumerated() {
            guard let jwk = value.objectValue else { throw fail("keys[\(index)] is not an object") }
            guard let kid = jwk["kid"]?.stringValue, TokenHeader.isValidKID(kid) else {
                throw fail("keys[\(index)] needs a \"kid\" of 1 to 128 characters of [A-Za-z0-9_.-]")
            }
            if let use = jwk["use"], use != .string("sig") { continue }
            if let member = privateMembers.first(where: { jwk[$0] != nil }) {
                throw fail("key '\(kid)' has the private member '\(member)': publish public keys only")
            }
            guard result[kid] == nil else { throw fail("kid '\(kid)' appears twice") }
            do throws(AuthSettingsError) {
                result[kid] = try verificationKey(jwk)
            } catch {
                throw fail("key '\(kid)': \(error.reason)")
            }
        }
        guard !result.isEmpty else { throw fail("has no signing key") }
        return result
    }

    private static func verificationKey(_ jwk: JSONObject) throws(AuthSettingsError) -> VerificationKey {
        func fail(_ reason: String) -> AuthSettingsError { AuthSettingsError(key: nil, reason: reason) }
        func member(_ name: String) throws(AuthSettingsError) -> String {
            guard let text = jwk[name]?.stringValue, !text.isEmpty, Base64URL.decode(text.utf8) != nil else {
                throw fail("\"\(name)\" must be a base64url string")
            }
            return text
        }
        let declared: String?
        switch jwk["alg"] {
        case nil: declared = nil
        case .string(let alg)?: declared = alg
        default: throw fail("\"alg\" must be a string")
        }
        let curve = jwk["crv"]?.stringValue

        switch jwk["kty"]?.stringValue {
        case "RSA":
            let n = try member("n")
            let e = try member("e")
            let algorithm = declared ?? "RS256"
            let digest: DigestAlgorithm
            switch algorithm {
            case "RS256", "PS256": digest = .sha256
            case "RS384", "PS384": digest = .sha384
            case "RS512", "PS512": digest = .sha512
            default: throw fail("alg '\(algorithm)' does not go with an RSA key")
            }
            guard let key = try? Insecure.RSA.PublicKey(modulus: n, exponent: e) else {
                throw fail("not a valid RSA public key of at least 2048 bits")
            }
            return VerificationKey(algorithm: algorithm, material: algorithm.hasPrefix("PS") ? .pss(key, digest) : .rsa(key, digest))

        case "EC":
            let x = try member("x")
            let y = try member("y")
            let expected: String
            switch curve {
            case "P-256": expected = "ES256"
            case "P-384": expected = "ES384"
            case "P-521": expected = "ES512"
            default: throw fail("EC curve must be P-256, P-384 or P-521")
            }
            guard declared == nil || declared == expected else { throw fail("alg must be \(expected) for curve \(curve ?? "")") }
            let material: Material?
            switch expected {
            case "ES256": material = (try? ES256PublicKey(parameters: (x, y))).map(Material.es256)
            case "ES384": material = (try? ES384PublicKey(parameters: (x, y))).map(Material.es384)
            default: material = (try? ES512PublicKey(parameters: (x, y))).map(Material.es512)
            }
            guard let material else { throw fail("not a valid \(curve ?? "") public key") }
            return VerificationKey(algorithm: expected, material: material)

        case "OKP":
            guard curve == "Ed25519" else { throw fail("OKP curve must be Ed25519") }
            guard declared == nil || declared == "EdDSA" else { throw fail("alg must be EdDSA for an Ed25519 key") }
            let x = try member("x")
            guard let raw = Base64URL.decode(x.utf8), raw.count == 32, let key = try? EdDSA.PublicKey(x: Base64URL.encode(raw), curve: .ed25519)
            else { throw fail("not a valid Ed25519 public key") }
            return VerificationKey(algorithm: "EdDSA", material: .eddsa(key))

        case "oct":
            throw fail("symmetric keys do not belong in a JWKS file: use hs256_secret, hs384_secret or hs512_secret")

        default:
            throw fail("\"kty\" must be RSA, EC or OKP")
        }
    }
}
