import Crypto
import Foundation
import GatewayCore
import GatewayTesting
import Testing
import _CryptoExtras
@testable import StagePush

@Suite("Push: FCM HTTP v1 with a service account")
struct FCMTests {
    /// A service-account JSON file whose token_uri is the local receiver's.
    static func serviceAccount(tokenURI: String, key: _RSA.Signing.PrivateKey) throws -> String {
        let path = NSTemporaryDirectory() + "fcm-sa-" + UUID().uuidString + ".json"
        let json: JSONValue = [
            "type": "service_account", "project_id": "chat-test", "client_email": "push@chat-test.iam.gserviceaccount.com",
            "private_key": .string(key.pemRepresentation), "token_uri": .string(tokenURI),
        ]
        try Data(json.jsonBytes).write(to: URL(fileURLWithPath: path))
        return path
    }

    static let key = try! _RSA.Signing.PrivateKey(keySize: .bits2048)

    static func start() async throws -> (LocalHTTPService, PushFixture) {
        let receiver = try await LocalHTTPService.start()
        let file = try serviceAccount(tokenURI: receiver.baseURL + "/token", key: key)
        let settings = #"{"providers": {"fcm": {"service_account_file": "\#(file)", "base_url": "\#(receiver.baseURL)"}}, "allow_http": true, "timeout_ms": 5000}"#
        return (receiver, try PushFixture.make(settings: settings))
    }

    static func answer(send: @escaping @Sendable (LocalHTTPService.Request) -> LocalHTTPService.Reply) -> @Sendable (LocalHTTPService.Request) -> LocalHTTPService.Reply {
        { request in
            if request.path == "/token" {
                return .init(status: 200, headers: ["Content-Type": "application/json"], body: #"{"access_token":"ya29.test-token","expires_in":3600,"token_type":"Bearer"}"#)
            }
            return send(request)
        }
    }

    @Test("the OAuth grant is an RS256 JWT by the service account; the token is cached; the message goes to messages:send")
    func sent() async throws {
        let (receiver, fixture) = try await Self.start()
        receiver.answer(Self.answer { _ in .init(status: 200, body: #"{"name":"projects/chat-test/messages/1"}"#) })
        try await fixture.register("bob", ["platform": "fcm", "token": "fcm:token-bob_1"])
        try await fixture.register("carol", ["platform": "fcm", "token": "fcm:token-carol_1"])
        try await fixture.send("hi", id: 701)
        try await fixture.send("hi", to: .user("carol"), id: 702)
        #expect(await fixture.stage.runDue() == 2)
        let tokenRequests = receiver.requests.filter { $0.path == "/token" }
        #expect(tokenRequests.count == 1)  // cached for the second send
        let form = String(decoding: try #require(tokenRequests.first).body, as: UTF8.self)
        #expect(form.hasPrefix("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion="))
        let jwt = String(form.split(separator: "=").last ?? "")
        let segments = jwt.split(separator: ".").map(String.init)
        try #require(segments.count == 3)
        let signature = _RSA.Signing.RSASignature(rawRepresentation: try #require(Base64URLCoder.decode(segments[2])))
        #expect(Self.key.publicKey.isValidSignature(signature, for: Array((segments[0] + "." + segments[1]).utf8), padding: .insecurePKCS1v1_5))
        let claims = try JSONParser.parse(try #require(Base64URLCoder.decode(segments[1])))
        #expect(claims["iss"] == "push@chat-test.iam.gserviceaccount.com")
        #expect(claims["scope"] == "https://www.googleapis.com/auth/firebase.messaging")
        #expect(claims["aud"] == .string(receiver.baseURL + "/token"))
        let sends = receiver.requests.filter { $0.path != "/token" }
        #expect(sends.count == 2)
        #expect(sends.allSatisfy { $0.path == "/v1/projects/chat-test/messages:send" && $0.headers["authorization"] == "Bearer ya29.test-token" })
        let message = try JSONParser.parse(try #require(sends.first { String(decoding: $0.body, as: UTF8.self).contains("token-bob") }).body)["message"]
        #expect(message?["token"] == "fcm:token-bob_1")
        let data = try #require(message?["data"]?["push"]?.stringValue)
        #expect(try JSONParser.parse(data)["user"] == "bob")
        // An hour later the cached token has expired: a new grant.
        fixture.clock.advance(by: 3600 * 1000)
        try await fixture.send("again", id: 703)
        await fixture.stage.runDue()
        #expect(receiver.requests.filter { $0.path == "/token" }.count == 2)
        await receiver.stop()
        await fixture.close()
    }

    @Test("UNREGISTERED removes the target")
    func unregistered() async throws {
        let (receiver, fixture) = try await Self.start()
        receiver.answer(
            Self.answer { _ in
                .init(
                    status: 404,
                    body: #"{"error":{"code":404,"message":"Requested entity was not found.","status":"NOT_FOUND","details":[{"@type":"type.googleapis.com/google.firebase.fcm.v1.FcmError","errorCode":"UNREGISTERED"}]}}"#
                )
            })
        try await fixture.register("bob", ["platform": "fcm", "token": "stale-token"])
        try await fixture.send("hi", id: 704)
        await fixture.stage.runDue()
        #expect(try await fixture.devices.targets(of: "bob").isEmpty)
        #expect(await fixture.stage.pushFigures().droppedTargets == 1)
        await receiver.stop()
        await fixture.close()
    }
}
