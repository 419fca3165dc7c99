import Foundation
import GatewayCore
import GatewayTesting
import JWTKit
import StageAuth
import Testing

@Suite("AuthStage with a JWKS file")
struct JWKSTests {
    /// A JWKS document with an ES256 key `ec-1`, an RS256 key `rsa-1`, an Ed25519 key `ed-1` and
    /// an encryption key that must be skipped.
    static func document(extra: String = "") throws -> String {
        let ec = try #require(Fixtures.es256.publicKey.parameters)
        let rsa = try Fixtures.rsa.publicKey.getKeyPrimitives()
        let ed = Handmade.base64URL(Fixtures.eddsa.publicKey.rawRepresentation)
        return """
            {"keys": [
              {"kty": "EC", "crv": "P-256", "kid": "ec-1", "use": "sig", "x": "\(ec.x)", "y": "\(ec.y)"},
              {"kty": "RSA", "kid": "rsa-1", "alg": "RS256", "n": "\(Handmade.base64URL(rsa.modulus))", "e": "\(Handmade.base64URL(rsa.publicExponent))"},
              {"kty": "OKP", "crv": "Ed25519", "kid": "ed-1", "x": "\(ed)"},
              {"kty": "RSA", "kid": "enc-1", "use": "enc", "n": "AQAB", "e": "AQAB"}\(extra)
            ]}
            """
    }

    /// Writes `contents` to a fresh temporary file, runs `body` with its path, and removes it.
    @discardableResult
    static func withFile<T>(_ contents: String, _ body: (String) async throws -> T) async throws -> T {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("jwks-\(UUID().uuidString).json")
        try Data(contents.utf8).write(to: url)
        defer { try? FileManager.default.removeItem(at: url) }
        return try await body(url.path)
    }

    @Test func knownKidsVerify() async throws {
        try await Self.withFile(try Self.document()) { path in
            let stage = try Fixtures.stage(AuthSettings(jwksFile: path))
            let tokens = [
                try await SigningKey.es256(Fixtures.es256).sign(header: ["kid": "ec-1"]),
                try await SigningKey.rsa(Fixtures.rsa).sign(header: ["kid": "rsa-1"]),
                try await SigningKey.eddsa(Fixtures.eddsa).sign(header: ["kid": "ed-1"]),
            ]
            for token in tokens {
                #expect(try await stage.authenticate(token: token).user == "alice")
            }
        }
    }

    @Test func unknownKidIsRefused() async throws {
        try await Self.withFile(try Self.document()) { path in
            let stage = try Fixtures.stage(AuthSettings(jwksFile: path))
            let token = try await SigningKey.es256(Fixtures.es256).sign(header: ["kid": "ec-2"])
            #expect(await rejection(stage, token) == .unauthorized("unknown kid"))
            let skipped = try await SigningKey.rsa(Fixtures.rsa).sign(header: ["kid": "enc-1"])
            #expect(await rejection(stage, skipped) == .unauthorized("unknown kid"))
        }
    }

    @Test func kidMustMatchTheAlgorithm() async throws {
        try await Self.withFile(try Self.document()) { path in
            let stage = try Fixtures.stage(AuthSettings(jwksFile: path))
            // An RS256 token naming the EC key: the key decides the algorithm, not the token.
            let token = try await SigningKey.rsa(Fixtures.rsa).sign(header: ["kid": "ec-1"])
            #expect(await rejection(stage, token) == .unauthorized("algorithm not allowed for this kid"))
        }
    }

    @Test func hostileKidsAreRefusedBeforeAnyLookup() async throws {
        try await Self.withFile(try Self.document()) { path in
            let stage = try Fixtures.stage(AuthSettings(jwksFile: path))
            for kid in ["../../../etc/passwd", "ec-1' OR '1'='1", "ec-1/../ec-1"] {
                let token = try await SigningKey.es256(Fixtures.es256).sign(header: ["kid": .string(kid)])
                #expect(await rejection(stage, token) == .unauthorized("invalid kid"))
            }
        }
    }

    @Test func tokenWithoutKidNeedsAnInlineKey() async throws {
        try await Self.withFile(try Self.document()) { path in
            let jwksOnly = try Fixtures.stage(AuthSettings(jwksFile: path))
            let token = try await SigningKey.es256(Fixtures.es256).sign()
            #expect(await rejection(jwksOnly, token) == .unauthorized("token has no kid"))

            let both = try Fixtures.stage(AuthSettings(hs256Secret: Secret(Fixtures.hs256Secret), jwksFile: path))
            let hs256 = try await SigningKey.hmac(Fixtures.hs256Secret, .sha256).sign()
            #expect(try await both.authenticate(token: hs256).user == "alice")
            // With a JWKS, a kid must name one of its keys, even for an inline key's algorithm.
            let hs256WithKid = try await SigningKey.hmac(Fixtures.hs256Secret, .sha256).sign(header: ["kid": "hmac"])
            #expect(await rejection(both, hs256WithKid) == .unauthorized("unknown kid"))
        }
    }

    @Test func missingFileIsABuildError() {
        let path = "/nonexistent/\(UUID().uuidString)/jwks.json"
        #expect(throws: AuthSettingsError(key: "jwks_file", reason: "no file at '\(path)'")) {
            try AuthStage(settings: AuthSettings(jwksFile: path), clock: TestClock())
        }
    }

    @Test(arguments: [
        "not json",
        #"{"keys": []}"#,
        #"{"keys": [{"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}]}"#,
        #"{"keys": [{"kty": "oct", "kid": "s", "k": "c2VjcmV0"}]}"#,
        #"{"keys": [{"kty": "EC", "crv": "P-256", "kid": "a", "x": "AA", "y": "AA"}]}"#,
        #"{"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "a", "x": "AA", "d": "AA"}]}"#,
        #"{"keys": [{"kty": "RSA", "kid": "a/b", "n": "AQAB", "e": "AQAB"}]}"#,
    ])
    func invalidDocumentsAreBuildErrors(_ document: String) async throws {
        try await Self.withFile(document) { path in
            #expect(throws: AuthSettingsError.self) {
                try AuthStage(settings: AuthSettings(jwksFile: path), clock: TestClock())
            }
        }
    }

    @Test func privateKeyMaterialIsRefused() async throws {
        let extra = #", {"kty": "OKP", "crv": "Ed25519", "kid": "ed-2", "x": "\#(Handmade.base64URL(Fixtures.eddsa.publicKey.rawRepresentation))", "d": "\#(Handmade.base64URL(Fixtures.eddsa.rawRepresentation))"}"#
        try await Self.withFile(try Self.document(extra: extra)) { path in
            #expect(throws: AuthSettingsError(key: "jwks_file", reason: "key 'ed-2' has the private member 'd': publish public keys only")) {
                try AuthStage(settings: AuthSettings(jwksFile: path), clock: TestClock())
            }
        }
    }

    @Test func duplicateKidIsRefused() async throws {
        let ec = try #require(Fixtures.es256.publicKey.parameters)
        let extra = #", {"kty": "EC", "crv": "P-256", "kid": "ec-1", "x": "\#(ec.x)", "y": "\#(ec.y)"}"#
        try await Self.withFile(try Self.document(extra: extra)) { path in
            #expect(throws: AuthSettingsError(key: "jwks_file", reason: "kid 'ec-1' appears twice")) {
                try AuthStage(settings: AuthSettings(jwksFile: path), clock: TestClock())
            }
        }
    }
}
