import Foundation
import GatewayCore
import GatewayTesting
import JWTKit
import StageAuth
import Testing

@Suite("AuthStage.authenticate: accepted tokens")
struct AcceptedTokenTests {
    /// Each algorithm with the settings that configure its key and the key that signs.
    enum KeyCase: String, CaseIterable, Sendable {
        case hs256, hs384, hs512, rs256, es256, eddsaPEM, eddsaRawBase64URL, eddsaRawBase64

        var settings: AuthSettings {
            switch self {
            case .hs256: AuthSettings(hs256Secret: Secret(Fixtures.hs256Secret))
            case .hs384: AuthSettings(hs384Secret: Secret(Fixtures.hs384Secret))
            case .hs512: AuthSettings(hs512Secret: Secret(Fixtures.hs512Secret))
            case .rs256: AuthSettings(rs256PublicKey: Fixtures.rsaPublicPEM)
            case .es256: AuthSettings(es256PublicKey: Fixtures.es256.publicKey.pemRepresentation)
            case .eddsaPEM: AuthSettings(eddsaPublicKey: Fixtures.eddsa.publicKey.pemRepresentation)
            case .eddsaRawBase64URL: AuthSettings(eddsaPublicKey: Handmade.base64URL(Fixtures.eddsa.publicKey.rawRepresentation))
            case .eddsaRawBase64: AuthSettings(eddsaPublicKey: Fixtures.eddsa.publicKey.rawRepresentation.base64EncodedString())
            }
        }

        var key: SigningKey {
            switch self {
            case .hs256: .hmac(Fixtures.hs256Secret, .sha256)
            case .hs384: .hmac(Fixtures.hs384Secret, .sha384)
            case .hs512: .hmac(Fixtures.hs512Secret, .sha512)
            case .rs256: .rsa(Fixtures.rsa)
            case .es256: .es256(Fixtures.es256)
            case .eddsaPEM, .eddsaRawBase64URL, .eddsaRawBase64: .eddsa(Fixtures.eddsa)
            }
        }
    }

    @Test(arguments: KeyCase.allCases)
    func validTokenGivesItsSubject(_ keyCase: KeyCase) async throws {
        let stage = try Fixtures.stage(keyCase.settings)
        let token = try await keyCase.key.sign(TestClaims(sub: "alice.b@example-1"))
        let identity = try await stage.authenticate(token: token)
        #expect(identity == Identity(user: "alice.b@example-1", expiresAt: (Fixtures.nowSeconds + 3600) * 1000))
    }

    @Test func severalKeysEachVerifyTheirOwnAlgorithm() async throws {
        let settings = AuthSettings(
            hs256Secret: Secret(Fixtures.hs256Secret), rs256PublicKey: Fixtures.rsaPublicPEM,
            es256PublicKey: Fixtures.es256.publicKey.pemRepresentation)
        let stage = try Fixtures.stage(settings)
        for key in [SigningKey.hmac(Fixtures.hs256Secret, .sha256), .rsa(Fixtures.rsa), .es256(Fixtures.es256)] {
            #expect(try await stage.authenticate(token: key.sign()).user == "alice")
        }
    }

    @Test func kidIsOnlyAHintWithoutJWKS() async throws {
        let stage = try Fixtures.stage(Fixtures.hs256Settings())
        let token = try await SigningKey.hmac(Fixtures.hs256Secret, .sha256).sign(header: ["kid": "main-2026.01"])
        #expect(try await stage.authenticate(token: token).user == "alice")
    }

    @Test func audienceMayBeAnArray() async throws {
        let stage = try Fixtures.stage(Fixtures.hs256Settings(issuer: "https://id.example", audience: "chat"))
        let token = try await SigningKey.hmac(Fixtures.hs256Secret, .sha256)
            .sign(TestClaims(iss: "https://id.example", aud: ["mail", "chat"]))
        #expect(try await stage.authenticate(token: token).user == "alice")
    }

    @Test func expIsOptionalWhenNotRequired() async throws {
        let stage = try Fixtures.stage(Fixtures.hs256Settings(requireExp: false))
        let token = try await SigningKey.hmac(Fixtures.hs256Secret, .sha256).sign(TestClaims(exp: nil))
        #expect(try await stage.authenticate(token: token) == Identity(user: "alice", expiresAt: nil))
    }

    @Test func fractionalNumericDatesAreAccepted() async throws {
        let stage = try Fixtures.stage(Fixtures.hs256Settings())
        let token = Handmade.hs256(payload: #"{"sub":"bob","exp":\#(Fixtures.nowSeconds + 60).75}"#)
        #expect(try await stage.authenticate(token: token) == Identity(user: "bob", expiresAt: (Fixtures.nowSeconds + 60) * 1000 + 750))
    }
}

@Suite("AuthStage.authenticate: refused tokens")
struct RefusedTokenTests {
    let hs256 = SigningKey.hmac(Fixtures.hs256Secret, .sha256)

    @Test(arguments: ["none", "None", "NONE", "nOnE"], ["", "c2lnbmF0dXJl"])
    func unsignedTokens(alg: String, signature: String) async throws {
        let stage = try Fixtures.stage(Fixtures.hs256Settings())
        let token = Handmade.token(
            header: #"{"alg":"\#(alg)","typ":"JWT"}"#, payload: #"{"sub":"alice","exp":\#(Fixtures.nowSeconds + 60)}"#,
            signature: signature)
        #expect(await rejection(stage, token)?.code == .unauthorized)
    }

    @Test func unsignedTokenReasonNamesTheAlgorithmProblem() async throws {
        let stage = try Fixtures.stage(Fixtures.hs256Settings())
        let token = Handmade.token(header: #"{"alg":"none"}"#, payload: #"{"sub":"alice"}"#, signature: "eA")
        #expect(await rejection(stage, token) == .unauthorized("unsigned tokens are not accepted"))
    }

    @Test func hs256SignedWithTheRSAPublicKeyAsSecret() async throws {
        let stage = try Fixtures.stage(AuthSettings(rs256PublicKey: Fixtures.rsaPublicPEM))
        let confused = SigningKey.hmac(Fixtures.rsaPublicPEM, .sha256)
        // Honest about its algorithm: HS256 is not allowed by an RSA key.
        #expect(await rejection(stage, try await confused.sign()) == .unauthorized("algorithm not allowed"))
        // Lying about it: an HMAC signature under an RS256 header does not verify as RSA.
        let lying = try await confused.sign(header: ["alg": "RS256"])
        #expect(await rejection(stage, lying) == .unauthorized("invalid signature"))
    }

    @Test func algorithmWithoutAConfiguredKey() async throws {
        let stage = try Fixtures.stage(Fixtures.hs256Settings())
        let hs512 = try await SigningKey.hmac(Fixtures.hs512Secret, .sha512).sign()
        #expect(await rejection(stage, hs512) == .unauthorized("algorithm not allowed"))
        let es256 = try await SigningKey.es256(Fixtures.es256).sign()
        #expect(await rejection(stage, es256) == .unauthorized("algorithm not allowed"))
    }

    @Test func wrongSecret() async throws {
        let stage = try Fixtures.stage(Fixtures.hs256Settings())
        let token = try await SigningKey.hmac(String(repeating: "x", count: 32), .sha256).sign()
        #expect(await rejection(stage, token) == .unauthorized("invalid signature"))
    }

    @Test func tamperedPayload() async throws {
        let stage = try Fixtures.stage(Fixtures.hs256Settings())
        let parts = try await hs256.sign().split(separator: ".")
        let forged = Handmade.base64URL(#"{"sub":"admin","exp":\#(Fixtures.nowSeconds + 3600)}"#)
        #expect(await rejection(stage, "\(parts[0]).\(forged).\(parts[2])") == .unauthorized("invalid signature"))
    }

    @Test func tamperedSignature() async throws {
        let stage = try Fixtures.stage(AuthSettings(es256PublicKey: Fixtures.es256.publicKey.pemRepresentation))
        let token = try await SigningKey.es256(Fixtures.es256).sign()
        // A character in the middle of the signature: every one of its bits is data.
        var bytes = Array(token.utf8)
        let index = bytes.count - 20
        bytes[index] = bytes[index] == UInt8(ascii: "A") ? UInt8(ascii: "B") : UInt8(ascii: "A")
        #expect(await rejection(stage, String(decoding: bytes, as: UTF8.self)) == .unauthorized("invalid signature"))
    }

    @Test func nonCanonicalSignatureEncoding() async throws {
        let stage = try Fixtures.stage(AuthSettings(es256PublicKey: Fixtures.es256.publicKey.pemRepresentation))
        let token = try await SigningKey.es256(Fixtures.es256).sign()
        // 64 signature bytes take 86 characters; the last one carries 4 unused bits. Setting one
        // leaves the decoded signature unchanged, but makes a second text for the same token.
        #expect(token.split(separator: ".")[2].utf8.count == 86)
        let last = try #require(token.last)
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
        let value = try #require(alphabet.firstIndex(of: last))
        let variant = String(token.dropLast()) + String(alphabet[value | 1])
        #expect(await rejection(stage, token) == nil)
        #expect(await rejection(stage, variant) == .unauthorized("malformed token"))
    }

    @Test(arguments: ["", "abc", "a.b", "a.b.c.d", "a..c", ".b.c", "a.b.", "a b.c.d", "a.b.c\n", "a.b.c=", "é.b.c"])
    func malformedShapes(_ token: String) async throws {
        let stage = try Fixtures.stage(Fixtures.hs256Settings())
        #expect(await rejection(stage, token)?.code == .unauthorized)
    }

    @Test func wrongSegmentCountOfARealToken() async throws {
        let stage = try Fixtures.stage(Fixtures.hs256Settings())
        let token = try await hs256.sign()
        #expect(await rejection(stage, token + ".e30")?.code == .unauthorized)
        #expect(await rejection(stage, String(token[..<token.lastIndex(of: ".")!]))?.code == .unauthorized)
    }

    @Test(arguments: [AuthStage.maxTokenBytes + 1, 64 * 1024])
    func oversizedTokens(size: Int) async throws {
        let stage = try Fixtures.stage(Fixtures.hs256Settings())
        let valid = try await hs256.sign()
        // A validly signed token padded with a long (ignored) header field, so only size refuses it.
        let padding = String(repeating: "x", count: size)
        let token = try await hs256.sign(header: ["pad": .string(padding)])
        #expect(token.utf8.count > AuthStage.maxTokenBytes)
        #expect(await rejection(stage, token) == .unauthorized("token too large"))
        #expect(await rejection(stage, valid) == nil)
    }

    @Test func tokenOfExactlyTheLimitIsRead() async throws {
        let stage = try Fixtures.stage(Fixtures.hs256Settings())
        let base = try await hs256.sign(header: ["pad": ""])
        // Base64 lengths move in uneven steps, so vary the header padding and the user name
        // until the token is exactly the limit.
        let estimate = (AuthStage.maxTokenBytes - base.utf8.count) * 3 / 4
        var exact: String?
        search: for padding in (estimate - 4)...(estimate + 4) {
            for user in ["a", "ab", "abc"] {
                let token = try await hs256.sign(TestClaims(sub: user), header: ["pad": .string(String(repeating: "x", count: padding))])
                if token.utf8.count == AuthStage.maxTokenBytes {
                    exact = token
                    break search
                }
            }
        }
        let token = try #require(exact)
        #expect(await rejection(stage, token) == nil)
    }

    @Test(arguments: ["jku", "x5u", "jwk"])
    func keyPointingHeaders(parameter: String) async throws {
        let stage = try Fixtures.stage(Fixtures.hs256Settings())
        let value: JWTHeaderField =
            parameter == "jwk" ? .object(["kty": "oct", "k": .string(Handmade.base64URL(Fixtures.hs256Secret))]) : "https://evil.example/keys"
        let token = try await hs256.sign(header: [parameter: value])
        #expect(await rejection(stage, token) == .unauthorized("header parameter '\(parameter)' is not accepted"))
    }

    @Test func certificateChainHeader() async throws {
        let stage = try Fixtures.stage(Fixtures.hs256Settings())
        let token = Handmade.hs256(header: #"{"alg":"HS256","x5c":["MIIB"]}"#, payload: #"{"sub":"alice","exp":\#(Fixtures.nowSeconds + 60)}"#)
        #expect(await rejection(stage, token) == .unauthorized("header parameter 'x5c' is not accepted"))
    }

    @Test func criticalHeaderExtensions() async throws {
        let stage = try Fixtures.stage(Fixtures.hs256Settings())
        let token = Handmade.hs256(
            header: #"{"alg":"HS256","crit":["b64"],"b64":false}"#, payload: #"{"sub":"alice","exp":\#(Fixtures.nowSeconds + 60)}"#)
        #expect(await rejection(stage, token)?.code == .unauthorized)
    }

    @Test func duplicateHeaderKeys() async throws {
        let stage = try Fixtures.stage(Fixtures.hs256Settings())
        let token = Handmade.hs256(
            header: #"{"alg":"HS256","alg":"none"}"#, payload: #"{"sub":"alice","exp":\#(Fixtures.nowSeconds + 60)}"#)
        #expect(await rejection(stage, token) == .unauthorized("malformed token header"))
    }

    @Test(arguments: ["../../etc/passwd", "..\\keys", "k1' OR '1'='1", "a;b", "a b", "", String(repeating: "k", count: 129)])
    func hostileKid(_ kid: String) async throws {
        let stage = try Fixtures.stage(Fixtures.hs256Settings())
        let token = try await hs256.sign(header: ["kid": .string(kid)])
        #expect(await rejection(stage, token) == .unauthorized("invalid kid"))
    }

    @Test func nonStringKid() async throws {
        let stage = try Fixtures.stage(Fixtures.hs256Settings())
        let token = Handmade.hs256(header: #"{"alg":"HS256","kid":7}"#, payload: #"{"sub":"alice","exp":\#(Fixtures.nowSeconds + 60)}"#)
        #expect(await rejection(stage, token) == .unauthorized("invalid kid"))
    }

    @Test func headerThatIsNotJSON() async throws {
        let stage = try Fixtures.stage(Fixtures.hs256Settings())
        for header in ["not json", "[1]", #"{"alg":"HS256""#, #""HS256""#] {
            let token = Handmade.hs256(header: header, payload: #"{"sub":"alice"}"#)
            #expect(await rejection(stage, token)?.code == .unauthorized)
        }
    }

    @Test func payloadThatIsNotAnObject() async throws {
        let stage = try Fixtures.stage(Fixtures.hs256Settings())
        for payload in ["[1]", "\"alice\"", "{", #"{"sub":"a","sub":"b","exp":\#(Fixtures.nowSeconds + 60)}"#] {
            #expect(await rejection(stage, Handmade.hs256(payload: payload))?.code == .unauthorized)
        }
    }

    @Test func wrongIssuerOrAudience() async throws {
        let stage = try Fixtures.stage(Fixtures.hs256Settings(issuer: "https://id.example", audience: "chat"))
        let cases: [(TestClaims, GatewayError)] = [
            (TestClaims(iss: "https://evil.example", aud: ["chat"]), .unauthorized("wrong issuer")),
            (TestClaims(iss: nil, aud: ["chat"]), .unauthorized("wrong issuer")),
            (TestClaims(iss: "https://id.example", aud: ["mail"]), .unauthorized("wrong audience")),
            (TestClaims(iss: "https://id.example", aud: ["mail", "chat2"]), .unauthorized("wrong audience")),
            (TestClaims(iss: "https://id.example", aud: nil), .unauthorized("wrong audience")),
        ]
        for (claims, expected) in cases {
            #expect(await rejection(stage, try await hs256.sign(claims)) == expected)
        }
    }

    @Test func missingExp() async throws {
        let stage = try Fixtures.stage(Fixtures.hs256Settings())
        let token = try await hs256.sign(TestClaims(exp: nil))
        #expect(await rejection(stage, token) == .unauthorized("token has no exp"))
    }

    @Test(arguments: [#""1767229200""#, "-1", "1e300", "true", "null"])
    func invalidExp(_ exp: String) async throws {
        let stage = try Fixtures.stage(Fixtures.hs256Settings())
        let token = Handmade.hs256(payload: #"{"sub":"alice","exp":\#(exp)}"#)
        #expect(await rejection(stage, token) == .unauthorized("invalid exp"))
    }

    @Test(arguments: [#""sub":"""#, #""sub":"a b""#, #""sub":"\#(String(repeating: "u", count: 65))""#, #""sub":42"#, #""sub":"al/ice""#, #""x":1"#])
    func invalidSubject(_ member: String) async throws {
        let stage = try Fixtures.stage(Fixtures.hs256Settings())
        let token = Handmade.hs256(payload: #"{\#(member),"exp":\#(Fixtures.nowSeconds + 60)}"#)
        #expect(await rejection(stage, token) == .unauthorized("sub must be 1 to 64 characters of [A-Za-z0-9_.@-]"))
    }
}

@Suite("AuthStage.authenticate: exp and nbf against the injected clock")
struct TokenTimeTests {
    let hs256 = SigningKey.hmac(Fixtures.hs256Secret, .sha256)
    let exp = Fixtures.nowSeconds + 600

    @Test func expJustInsideTheLeewayIsAccepted() async throws {
        let clock = TestClock()
        let stage = try Fixtures.stage(Fixtures.hs256Settings(leeway: 30), clock: clock)
        let token = try await hs256.sign(TestClaims(exp: exp))
        clock.set((exp + 30) * 1000 - 1)
        #expect(try await stage.authenticate(token: token).expiresAt == exp * 1000)
    }

    @Test func expJustOutsideTheLeewayIsTokenExpired() async throws {
        let clock = TestClock()
        let stage = try Fixtures.stage(Fixtures.hs256Settings(leeway: 30), clock: clock)
        let token = try await hs256.sign(TestClaims(exp: exp))
        clock.set((exp + 30) * 1000)
        #expect(await rejection(stage, token) == GatewayError(.tokenExpired, "token expired"))
        clock.set((exp + 3600) * 1000)
        #expect(await rejection(stage, token)?.code == .tokenExpired)
    }

    @Test func zeroLeewayExpiresAtExp() async throws {
        let clock = TestClock()
        let stage = try Fixtures.stage(Fixtures.hs256Settings(leeway: 0), clock: clock)
        let token = try await hs256.sign(TestClaims(exp: exp))
        clock.set(exp * 1000 - 1)
        #expect(await rejection(stage, token) == nil)
        clock.set(exp * 1000)
        #expect(await rejection(stage, token)?.code == .tokenExpired)
    }

    @Test func nbfJustInsideTheLeewayIsAccepted() async throws {
        let clock = TestClock()
        let stage = try Fixtures.stage(Fixtures.hs256Settings(leeway: 30), clock: clock)
        let nbf = Fixtures.nowSeconds + 300
        let token = try await hs256.sign(TestClaims(exp: nbf + 600, nbf: nbf))
        clock.set((nbf - 30) * 1000)
        #expect(await rejection(stage, token) == nil)
    }

    @Test func nbfJustOutsideTheLeewayIsRefused() async throws {
        let clock = TestClock()
        let stage = try Fixtures.stage(Fixtures.hs256Settings(leeway: 30), clock: clock)
        let nbf = Fixtures.nowSeconds + 300
        let token = try await hs256.sign(TestClaims(exp: nbf + 600, nbf: nbf))
        clock.set((nbf - 30) * 1000 - 1)
        #expect(await rejection(stage, token) == .unauthorized("token not valid yet"))
    }

    @Test func theSystemClockIsNotConsulted() async throws {
        // A token that expired in 2001, judged by a clock set to 2000: accepted.
        let clock = TestClock(millis: 946_684_800_000)
        let stage = try Fixtures.stage(Fixtures.hs256Settings(), clock: clock)
        let token = try await hs256.sign(TestClaims(exp: 978_307_200))
        #expect(try await stage.authenticate(token: token).user == "alice")
    }
}
