import Foundation
import GatewayCore
import GatewayTesting
import JWTKit
import StageAuth
import Testing

@Suite("AuthSettings: decoding and validation")
struct AuthSettingsTests {
    /// Decodes settings from JSON the way the config loader decodes YAML.
    static func decode(_ json: String) throws -> AuthSettings {
        try JSONDecoder().decode(AuthSettings.self, from: Data(json.utf8))
    }

    /// The key and message of a settings error.
    static func failure(_ json: String) -> (key: String?, message: String)? {
        do {
            _ = try decode(json)
            return nil
        } catch DecodingError.dataCorrupted(let context) {
            return (context.codingPath.last?.stringValue, context.debugDescription)
        } catch {
            return ("unexpected", "\(error)")
        }
    }

    @Test func defaults() throws {
        let settings = try Self.decode(#"{"hs256_secret": "\#(Fixtures.hs256Secret)"}"#)
        #expect(settings.hs256Secret?.value == Fixtures.hs256Secret)
        #expect(settings.leewaySeconds == 30)
        #expect(settings.requireExp)
        #expect(settings.issuer == nil && settings.audience == nil && settings.jwksFile == nil)
    }

    @Test func everyKey() throws {
        let pem = Fixtures.rsaPublicPEM.replacingOccurrences(of: "\n", with: "\\n")
        let settings = try Self.decode(
            #"{"hs256_secret":"\#(Fixtures.hs256Secret)","hs384_secret":"\#(Fixtures.hs384Secret)","hs512_secret":"\#(Fixtures.hs512Secret)","rs256_public_key":"\#(pem)","leeway_s":0,"issuer":"i","audience":"a","require_exp":false}"#
        )
        #expect(settings.leewaySeconds == 0)
        #expect(settings.issuer == "i" && settings.audience == "a" && !settings.requireExp)
        #expect(settings.rs256PublicKey == Fixtures.rsaPublicPEM)
    }

    @Test(arguments: [("hs256_secret", 32), ("hs384_secret", 48), ("hs512_secret", 64)])
    func shortHMACSecret(key: String, minimum: Int) {
        let short = String(repeating: "s", count: minimum - 1)
        let failure = Self.failure(#"{"\#(key)": "\#(short)"}"#)
        #expect(failure?.key == key)
        #expect(failure?.message == "must be at least \(minimum) bytes (was \(minimum - 1))")
    }

    @Test func shortSecretMessage() {
        let failure = Self.failure(#"{"hs256_secret": "short"}"#)
        #expect(failure?.key == "hs256_secret")
        #expect(failure?.message == "must be at least 32 bytes (was 5)")
    }

    @Test(arguments: [-1, 601, 100_000])
    func leewayOutOfRange(_ leeway: Int) {
        let failure = Self.failure(#"{"hs256_secret": "\#(Fixtures.hs256Secret)", "leeway_s": \#(leeway)}"#)
        #expect(failure?.key == "leeway_s")
        #expect(failure?.message == "must be 0...600 (was \(leeway))")
    }

    @Test func noKeySource() {
        let failure = Self.failure(#"{"leeway_s": 10, "audience": "chat"}"#)
        #expect(failure?.key == nil)
        #expect(failure?.message.hasPrefix("no key configured") == true)
    }

    @Test func wrongTypeNamesTheKey() {
        do {
            _ = try Self.decode(#"{"hs256_secret": "\#(Fixtures.hs256Secret)", "leeway_s": "thirty"}"#)
            Issue.record("decoded")
        } catch DecodingError.typeMismatch(_, let context) {
            #expect(context.codingPath.last?.stringValue == "leeway_s")
        } catch {
            Issue.record("unexpected error \(error)")
        }
    }

    @Test(arguments: [
        ("rs256_public_key", "not a pem"),
        ("es256_public_key", "-----BEGIN PUBLIC KEY-----\\nAAAA\\n-----END PUBLIC KEY-----"),
        ("eddsa_public_key", "AAAA"),
        ("eddsa_public_key", "-----BEGIN PUBLIC KEY-----\\nAAAA\\n-----END PUBLIC KEY-----"),
        ("rs256_public_key", "-----BEGIN PRIVATE KEY-----\\nAAAA\\n-----END PRIVATE KEY-----"),
        ("issuer", ""),
        ("jwks_file", ""),
    ])
    func invalidValues(key: String, value: String) {
        let failure = Self.failure(#"{"hs256_secret": "\#(Fixtures.hs256Secret)", "\#(key)": "\#(value)"}"#)
        #expect(failure?.key == key)
    }

    @Test func keyOfTheWrongTypeIsRefused() {
        // A P-256 key given as the RSA key.
        let pem = Fixtures.es256.publicKey.pemRepresentation.replacingOccurrences(of: "\n", with: "\\n")
        #expect(Self.failure(#"{"rs256_public_key": "\#(pem)"}"#)?.key == "rs256_public_key")
    }

    @Test func secretsAreRedactedWhenRendered() throws {
        let settings = try Self.decode(#"{"hs256_secret": "\#(Fixtures.hs256Secret)"}"#)
        let rendered = String(decoding: try JSONEncoder().encode(settings), as: UTF8.self)
        #expect(!rendered.contains(Fixtures.hs256Secret))
        #expect(rendered.contains("<redacted>"))
        #expect("\(settings)".contains(Fixtures.hs256Secret) == false)
    }

    @Test func settingsMadeInCodeAreValidatedByTheStage() {
        #expect(throws: AuthSettingsError(key: "hs256_secret", reason: "must be at least 32 bytes (was 3)")) {
            try AuthStage(settings: AuthSettings(hs256Secret: Secret("abc")), clock: TestClock())
        }
        #expect(throws: AuthSettingsError.self) {
            try AuthStage(settings: AuthSettings(), clock: TestClock())
        }
    }
}

@Suite("AuthStageFactory")
struct AuthStageFactoryTests {
    struct JSONSettings: SettingsSource {
        let json: String
        func decode<T: Decodable>(_ type: T.Type) throws -> T { try JSONDecoder().decode(T.self, from: Data(json.utf8)) }
    }

    func context(_ json: String) -> StageBuildContext {
        let store = InMemoryStore()
        return StageBuildContext(
            name: "auth", kind: "auth", settings: JSONSettings(json: json), logger: .init(label: "test"), clock: TestClock(),
            stores: Stores(store), node: NodeSettings())
    }

    @Test func buildsAnAuthenticatorWithRedactedSettings() async throws {
        #expect(AuthStageFactory.factory.kind == "auth")
        let built = try AuthStageFactory.factory.make(context(#"{"hs256_secret": "\#(Fixtures.hs256Secret)"}"#))
        let authenticator = try #require(built.stage as? any Authenticator)
        let token = try await SigningKey.hmac(Fixtures.hs256Secret, .sha256).sign()
        #expect(try await authenticator.authenticate(token: token).user == "alice")
        #expect(built.settings["hs256_secret"] == .string("<redacted>"))
        #expect(built.settings["leeway_s"] == .int(30))
    }

    @Test func settingsErrorsReachTheCaller() {
        #expect(throws: DecodingError.self) {
            try AuthStageFactory.factory.make(context(#"{"hs256_secret": "short"}"#))
        }
    }
}
