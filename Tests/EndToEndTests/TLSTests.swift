import AsyncHTTPClient
import GatewayTesting
import Foundation
import GatewayCore
import NIOSSL
import Testing

/// `tls: {cert, key}` serves wss:// and https:// on the public port (self-signed in the test).
@Suite("TLS")
struct TLSTests {
    @Test func websocketAndHTTPSOverTLS() async throws {
        let certificate = try TestCertificate.make()
        defer { certificate.remove() }
        let gateway = try await TestGateway.start(extra: "tls: { cert: \"\(certificate.certPath)\", key: \"\(certificate.keyPath)\" }")
        var tls = certificate.clientTLS()
        tls.certificateVerification = .noHostnameVerification

        // https: the discover document advertises wss://.
        var configuration = HTTPClient.Configuration()
        configuration.tlsConfiguration = tls
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        var request = HTTPClientRequest(url: "https://127.0.0.1:\(gateway.port)/v1/discover")
        request.method = .GET
        let response = try await client.execute(request, timeout: .seconds(10))
        var body = try await response.body.collect(upTo: 1 << 20)
        try await client.shutdown()
        let discover = try #require(try JSONParser.parse(body.readString(length: body.readableBytes) ?? "").objectValue)
        #expect(discover["ws_url"]?.stringValue?.hasPrefix("wss://") == true)

        // wss: a full session.
        let token = try await gateway.token("alice")
        let (stream, status, _) = try await WebSocketStream.connect(port: gateway.port, headers: [("Authorization", "Bearer \(token)")], tls: tls)
        #expect(status == 101)
        #expect(try await stream.nextFrame()["type"]?.stringValue == "hello")
        stream.send(sendFrame(to: .user("bob"), body: "secure", id: "t1"))
        #expect(try await stream.nextFrame()["type"]?.stringValue == "ack")
        // Plain text on the TLS port is not served.
        let plain = try? await WebSocketStream.connect(port: gateway.port, headers: [("Authorization", "Bearer \(token)")])
        #expect(plain?.status != 101)
        await gateway.stop()
    }

    @Test func longPollSessionsExpireWithoutPolls() async throws {
        // Real time: a TTL of 5 s leaves a loaded machine ample time (the sweep every ttl/4 may
        // expire a session ttl * 3/4 after its last poll) for the request right after the poll.
        let gateway = try await TestGateway.start(extra: "longpoll: { session_ttl_ms: 5000 }")
        let alice = try await LongPollClient.open(gateway, user: "alice")
        // A poll longer than the TTL keeps the session alive while it waits.
        #expect(try await alice.poll(timeoutMs: 6000).isEmpty)
        #expect(try await gateway.request(.GET, "/v1/lp/poll?session=\(alice.session)&timeout_ms=0", token: alice.token).status == 200)
        // No poll for longer than the TTL: expired, and alice is offline.
        let deadline = Date().addingTimeInterval(30)
        var status = 200
        while status == 200, Date() < deadline {
            try await Task.sleep(for: .milliseconds(100))  // the sweep runs every ttl/4; this only paces the check
            if !gateway.gateway.hub.isOnline("alice") {
                status = try await gateway.request(.GET, "/v1/lp/poll?session=\(alice.session)&timeout_ms=0", token: alice.token).status
            }
        }
        #expect(status == 404)
        await gateway.stop()
    }
}
