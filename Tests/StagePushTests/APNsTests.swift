import Crypto
import Foundation
import GatewayCore
import GatewayTesting
import Testing
@testable import StagePush

@Suite("Push: APNs over HTTP/2 and TLS with token authentication")
struct APNsTests {
    static let key = P256.Signing.PrivateKey()
    static let token = String(repeating: "ab", count: 32)

    static func settings(_ receiver: LocalHTTPService, certificate: TestCertificate) -> String {
        let pem = key.pemRepresentation.replacingOccurrences(of: "\n", with: "\\n")
        return #"{"providers": {"apns": {"team_id": "TEAM123456", "key_id": "KEY1234567", "private_key": "\#(pem)", "production_url": "\#(receiver.baseURL)", "sandbox_url": "\#(receiver.baseURL)/sandbox", "ca_file": "\#(certificate.certPath)", "expiration_s": 600}}, "timeout_ms": 10000}"#
    }

    /// Starts an HTTP/2 TLS server with a self-signed certificate and a stage that trusts it.
    static func start() async throws -> (LocalHTTPService, PushFixture) {
        let certificate = try TestCertificate.make()
        let receiver = try await LocalHTTPService.start(tls: try certificate.serverTLS())
        let fixture = try PushFixture.make(settings: settings(receiver, certificate: certificate))
        return (receiver, fixture)
    }

    /// Verifies the provider token: ES256 by our key, `kid` and `iss` as configured.
    static func verifyJWT(_ authorization: String?, now: Int64) throws -> Int64 {
        let value = try #require(authorization)
        #expect(value.hasPrefix("bearer "))
        let segments = value.dropFirst("bearer ".count).split(separator: ".").map(String.init)
        try #require(segments.count == 3)
        let signature = try P256.Signing.ECDSASignature(rawRepresentation: try #require(Base64URLCoder.decode(segments[2])))
        #expect(key.publicKey.isValidSignature(signature, for: Array((segments[0] + "." + segments[1]).utf8)))
        let header = try JSONParser.parse(try #require(Base64URLCoder.decode(segments[0])))
        #expect(header["alg"] == "ES256" && header["kid"] == "KEY1234567")
        let claims = try JSONParser.parse(try #require(Base64URLCoder.decode(segments[1])))
        #expect(claims["iss"] == "TEAM123456")
        return try #require(claims["iat"]?.int64Value)
    }

    @Test("200: path, apns-* headers and the provider JWT are right; the token is reused, then renewed before it is an hour old")
    func sent() async throws {
        let (receiver, fixture) = try await Self.start()
        receiver.answer { _ in .init(status: 200) }
        try await fixture.register("bob", ["platform": "apns", "token": .string(Self.token.uppercased()), "topic": "com.example.chat"])
        try await fixture.send("hi", id: 601)
        #expect(await fixture.stage.runDue() == 1)
        let request = try #require(receiver.requests.first)
        #expect(request.path == "/3/device/" + Self.token)
        #expect(request.headers["apns-topic"] == "com.example.chat")
        #expect(request.headers["apns-push-type"] == "alert")
        #expect(request.headers["apns-priority"] == "10")
        #expect(request.headers["apns-collapse-id"] == PushNotification.collapseID("u:alice|bob"))
        #expect(request.headers["apns-expiration"] == String(fixture.clock.nowMillis() / 1000 + 600))
        let firstIat = try Self.verifyJWT(request.headers["authorization"], now: fixture.clock.nowMillis())
        #expect(firstIat == fixture.clock.nowMillis() / 1000)
        let body = try JSONParser.parse(request.body)
        #expect(body["aps"]?["alert"] != nil)
        #expect(body["data"]?["type"] == "push" && body["data"]?["user"] == "bob")
        // 10 minutes later (another conversation, so no collapse window): the same token.
        fixture.clock.advance(by: 10 * 60 * 1000)
        try await fixture.send("hi", from: "carol", id: 602)
        #expect(await fixture.stage.runDue() == 1)
        #expect(receiver.requests[1].headers["authorization"] == request.headers["authorization"])
        // 50 minutes after it was made: a new one.
        fixture.clock.advance(by: 40 * 60 * 1000)
        try await fixture.send("hi", from: "dave", id: 603)
        #expect(await fixture.stage.runDue() == 1)
        let renewedIat = try Self.verifyJWT(receiver.requests[2].headers["authorization"], now: fixture.clock.nowMillis())
        #expect(renewedIat == firstIat + 50 * 60)
        await receiver.stop()
        await fixture.close()
    }

    @Test("sandbox targets go to the sandbox host")
    func sandbox() async throws {
        let (receiver, fixture) = try await Self.start()
        receiver.answer { _ in .init(status: 200) }
        try await fixture.register("bob", ["platform": "apns", "token": .string(Self.token), "topic": "com.example.chat", "sandbox": true])
        try await fixture.send("hi", id: 604)
        await fixture.stage.runDue()
        #expect(receiver.requests.first?.path == "/sandbox/3/device/" + Self.token)
        await receiver.stop()
        await fixture.close()
    }

    @Test("410 removes the target")
    func gone() async throws {
        let (receiver, fixture) = try await Self.start()
        receiver.answer { _ in .init(status: 410, body: #"{"reason":"Unregistered"}"#) }
        try await fixture.register("bob", ["platform": "apns", "token": .string(Self.token), "topic": "com.example.chat"])
        try await fixture.send("hi", id: 605)
        await fixture.stage.runDue()
        #expect(try await fixture.devices.targets(of: "bob").isEmpty)
        #expect(await fixture.stage.pushFigures().droppedTargets == 1)
        await receiver.stop()
        await fixture.close()
    }

    @Test("429 with Retry-After is retried after that many seconds")
    func tooManyRequests() async throws {
        let (receiver, fixture) = try await Self.start()
        receiver.answer { _ in .init(status: 429, headers: ["Retry-After": "5"], body: #"{"reason":"TooManyRequests"}"#) }
        try await fixture.register("bob", ["platform": "apns", "token": .string(Self.token), "topic": "com.example.chat"])
        try await fixture.send("hi", id: 606)
        #expect(await fixture.stage.runDue() == 1)
        receiver.answer { _ in .init(status: 200) }
        fixture.clock.advance(by: 4999)
        #expect(await fixture.stage.runDue() == 0)
        fixture.clock.advance(by: 1)
        #expect(await fixture.stage.runDue() == 1)
        #expect(receiver.requests.count == 2)
        let figures = await fixture.stage.pushFigures()
        #expect(figures.byProvider[.apns]?.sent == 1 && figures.byProvider[.apns]?.retried == 1)
        #expect(try await fixture.devices.targets(of: "bob").count == 1)
        await receiver.stop()
        await fixture.close()
    }
}
