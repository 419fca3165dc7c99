import Crypto
import Foundation
import GatewayCore
import GatewayTesting
import Testing
@testable import StagePush

@Suite("Push: Web Push (RFC 8030, 8291, 8292)")
struct WebPushTests {
    static func b64(_ text: String) throws -> [UInt8] { try #require(Base64URLCoder.decode(text)) }

    @Test("RFC 8291 Appendix A's example, encrypted byte for byte with its keys and salt")
    func rfc8291AppendixA() throws {
        let asPrivate = try P256.KeyAgreement.PrivateKey(rawRepresentation: try Self.b64("yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw"))
        #expect(
            Base64URLCoder.encode(Array(asPrivate.publicKey.x963Representation))
                == "BP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A8")
        let body = try WebPushEncryption.encrypt(
            Array("When I grow up, I want to be a watermelon".utf8),
            p256dh: try Self.b64("BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4"),
            auth: try Self.b64("BTBZMqHH6r4Tts7J_aSIgg"), ephemeral: asPrivate, salt: try Self.b64("DGv6ra1nlYgDCS1FRnbzlw"))
        #expect(
            Base64URLCoder.encode(body)
                == "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN"
        )
        // And the user agent's side opens it.
        let uaPrivate = try P256.KeyAgreement.PrivateKey(rawRepresentation: try Self.b64("q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94"))
        let plain = try WebPushEncryption.decrypt(body, privateKey: uaPrivate, auth: try Self.b64("BTBZMqHH6r4Tts7J_aSIgg"))
        #expect(String(decoding: plain, as: UTF8.self) == "When I grow up, I want to be a watermelon")
    }

    /// A browser's subscription: its key pair and auth secret.
    struct Browser {
        let key = P256.KeyAgreement.PrivateKey()
        let auth: [UInt8] = (0..<16).map { _ in UInt8.random(in: 0...255) }
        var p256dh: String { Base64URLCoder.encode(Array(key.publicKey.x963Representation)) }
        var authText: String { Base64URLCoder.encode(auth) }
    }

    static let vapidKey = P256.Signing.PrivateKey()

    static func settings(extra: String = "") -> String {
        let raw = Base64URLCoder.encode(Array(vapidKey.rawRepresentation))
        return #"{"providers": {"webpush": {"vapid": {"private_key": "\#(raw)", "subject": "mailto:ops@example.com"}, "ttl_s": 3600, "urgency": "normal"}}, "allow_http": true, "timeout_ms": 5000\#(extra)}"#
    }

    @Test("a local push service receives a real notification: headers as RFC 8030, decrypted with the browser's key, VAPID JWT verifies; http_ece decrypts it too")
    func endToEnd() async throws {
        // A push service answers 201 Created (RFC 8030).
        let receiver = try await LocalHTTPService.start { _ in .init(status: 201) }
        let fixture = try PushFixture.make(settings: Self.settings())
        let browser = Browser()
        try await fixture.register(
            "bob",
            ["platform": "webpush", "endpoint": .string(receiver.baseURL + "/push/abc"), "keys": ["p256dh": .string(browser.p256dh), "auth": .string(browser.authText)], "expirationTime": nil])
        try await fixture.send("hi", id: 501)
        #expect(await fixture.stage.runDue() == 1)
        let request = try #require(receiver.requests.first)
        #expect(request.path == "/push/abc")
        #expect(request.headers["content-encoding"] == "aes128gcm")
        #expect(request.headers["ttl"] == "3600")
        #expect(request.headers["urgency"] == "normal")
        let topic = try #require(request.headers["topic"])
        #expect(topic.count == 32 && Base64URLCoder.decode(topic) != nil)
        // The payload decrypts with the subscription's private key to PROTOCOL.md §9's JSON.
        let plain = try WebPushEncryption.decrypt(request.body, privateKey: browser.key, auth: browser.auth)
        let json = try JSONParser.parse(plain)
        #expect(json["type"] == "push" && json["user"] == "bob" && json["count"] == 1)
        #expect(json["messages"]?.arrayValue?.first?["id"] == "501")
        // VAPID (RFC 8292): vapid t=<JWT>, k=<the server's public key>; ES256 over the first two parts.
        let authorization = try #require(request.headers["authorization"])
        #expect(authorization.hasPrefix("vapid t="))
        let parts = authorization.dropFirst("vapid ".count).components(separatedBy: ", ")
        let jwt = try #require(parts.first { $0.hasPrefix("t=") }).dropFirst(2)
        let k = try #require(parts.first { $0.hasPrefix("k=") }).dropFirst(2)
        #expect(String(k) == Base64URLCoder.encode(Array(Self.vapidKey.publicKey.x963Representation)))
        let segments = jwt.split(separator: ".").map(String.init)
        #expect(segments.count == 3)
        let publicKey = try P256.Signing.PublicKey(x963Representation: try Self.b64(String(k)))
        let signature = try P256.Signing.ECDSASignature(rawRepresentation: try Self.b64(segments[2]))
        #expect(publicKey.isValidSignature(signature, for: Array((segments[0] + "." + segments[1]).utf8)))
        let header = try JSONParser.parse(try Self.b64(segments[0]))
        #expect(header["alg"] == "ES256")
        let claims = try JSONParser.parse(try Self.b64(segments[1]))
        #expect(claims["aud"] == .string(receiver.baseURL))
        #expect(claims["sub"] == "mailto:ops@example.com")
        let exp = try #require(claims["exp"]?.int64Value)
        #expect(exp > fixture.clock.nowMillis() / 1000 && exp <= fixture.clock.nowMillis() / 1000 + 24 * 3600)
        // PyPI's http_ece (scripts/setup-push.sh installs it) decrypts the same bytes.
        let fromPython = try await Self.httpECEDecrypt(body: request.body, privateKey: browser.key, auth: browser.auth)
        #expect(fromPython == plain)
        await receiver.stop()
        await fixture.close()
    }

    static func httpECEDecrypt(body: [UInt8], privateKey: P256.KeyAgreement.PrivateKey, auth: [UInt8]) async throws -> [UInt8] {
        let script = """
            import base64, sys, http_ece
            from cryptography.hazmat.primitives.asymmetric import ec
            d = lambda s: base64.urlsafe_b64decode(s + '=' * (-len(s) % 4))
            body, key, auth = d(sys.argv[1]), d(sys.argv[2]), d(sys.argv[3])
            private = ec.derive_private_key(int.from_bytes(key, 'big'), ec.SECP256R1())
            sys.stdout.write(base64.urlsafe_b64encode(http_ece.decrypt(body, private_key=private, auth_secret=auth, version='aes128gcm')).decode())
            """
        let run = try await Command.run("python3", [
            "-c", script, Base64URLCoder.encode(body), Base64URLCoder.encode(Array(privateKey.rawRepresentation)), Base64URLCoder.encode(auth),
        ])
        try #require(run.succeeded, "python3 with http_ece failed (run scripts/setup-push.sh): \(run.error)")
        return try #require(Base64URLCoder.decode(run.output))
    }

    @Test("404 and 410 from the push service remove the subscription", arguments: [404, 410])
    func gone(status: Int) async throws {
        let receiver = try await LocalHTTPService.start()
        receiver.answer { _ in .init(status: status) }
        let fixture = try PushFixture.make(settings: Self.settings())
        let browser = Browser()
        try await fixture.register(
            "bob", ["platform": "webpush", "endpoint": .string(receiver.baseURL + "/push/x"), "keys": ["p256dh": .string(browser.p256dh), "auth": .string(browser.authText)]])
        try await fixture.send("hi", id: 502)
        await fixture.stage.runDue()
        #expect(try await fixture.devices.targets(of: "bob").isEmpty)
        await receiver.stop()
        await fixture.close()
    }

    @Test("VAPID settings are checked when the stage is built")
    func badSettings() throws {
        #expect(throws: (any Error).self) {
            try PushFixture.make(settings: #"{"providers": {"webpush": {"vapid": {"private_key": "short", "subject": "mailto:a@b"}}}}"#)
        }
        #expect(throws: (any Error).self) {
            try PushFixture.make(settings: #"{"providers": {"webpush": {"vapid": {"private_key": "\#(Base64URLCoder.encode(Array(Self.vapidKey.rawRepresentation)))", "subject": "ops"}}}}"#)
        }
    }
}
