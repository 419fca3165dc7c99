import GatewayTesting
import Foundation
import GatewayConfig
import GatewayCore
import NIOCore
import NIOPosix
import Testing

@testable import chatgate

/// Issue 9: limits that hold whatever way a client connects, client addresses behind trusted
/// proxies only, a deadline on every request body, readiness that follows the store, and
/// secure defaults.
@Suite("Limits that hold")
struct LimitsTests {
    @Test func maxConnectionsCountsEverySocketUntilItCloses() async throws {
        let gateway = try await TestGateway.start(extra: "limits: { max_connections: 3, auth_timeout_ms: 60000 }")
        // Three token-less upgrades: each holds a place though no session exists yet.
        var open: [WebSocketStream] = []
        for _ in 0..<3 {
            let (stream, status, _) = try await WebSocketStream.connect(port: gateway.port)
            #expect(status == 101)
            open.append(stream)
        }
        // The fourth socket is answered 503 and closed before anything is read from it.
        let token = try await gateway.token("alice")
        let answer = try await RawHTTP.answerBeforeAnyRequest(port: gateway.port)
        #expect(answer.hasPrefix("HTTP/1.1 503"), "\(answer)")
        #expect(answer.contains("unavailable") && answer.contains("Retry-After: 5"))
        #expect(gateway.gateway.stats.refusedConnections.load(ordering: .relaxed) == 1)
        // Authenticating the admitted ones by frame does not let a fourth in either.
        open[0].send(.object(["type": "auth", "token": .string(token)]))
        #expect(try await open[0].nextFrame()["type"]?.stringValue == "hello")
        // A closed socket gives its place back.
        open[1].raw.close(code: 1000)
        _ = try await open[1].closeCode()
        // Once the server has processed the close, its place is free again.
        let application = gateway.bootstrap.application
        #expect(await TeardownCheck.wait { application.lifecycleCounts["admitted"] == 2 })
        let (stream, status, _) = try await WebSocketStream.connect(port: gateway.port)
        #expect(status == 101)
        open.append(stream)
        // The admin port is not counted: health still answers.
        #expect(try await gateway.request(.GET, "/healthz", admin: true).status == 200)
        await gateway.stop()
    }

    @Test func longPollSessionsCountUnderThePerUserAndPerAddressCaps() async throws {
        // The test client's sockets come from 127.0.0.1, a trusted proxy here, so the caps apply
        // to the forwarded addresses.
        let gateway = try await TestGateway.start(
            extra: """
                listen: { public: { host: 127.0.0.1, port: 0, trusted_proxies: ["127.0.0.0/8"] }, admin: { host: 127.0.0.1, port: 0, token: admin-test-token } }
                limits: { max_connections_per_ip: 2, max_sessions_per_user: 2 }
                """)
        func open(_ user: String, from address: String) async throws -> TestGateway.HTTPAnswer {
            try await gateway.request(.POST, "/v1/lp/open", token: try await gateway.token(user), body: "{}", headers: [("X-Forwarded-For", address)])
        }
        #expect(try await open("alice", from: "203.0.113.7").status == 200)
        #expect(try await open("bob", from: "203.0.113.7").status == 200)
        let third = try await open("carol", from: "203.0.113.7")
        #expect(third.status == 429, "a third long-poll session from one address: \(third.body)")
        #expect(third.headers["retry-after"] != nil)
        // Another client behind the same proxy is its own address.
        #expect(try await open("carol", from: "198.51.100.9").status == 200)
        // Per user: carol has one; a second from elsewhere is fine, a third is refused.
        #expect(try await open("carol", from: "192.0.2.1").status == 200)
        #expect(try await open("carol", from: "192.0.2.2").status == 429)
        // The sessions carry the forwarded address (admin view).
        let listed = try await gateway.request(.GET, "/admin/connections?user=alice", token: "admin-test-token", admin: true)
        #expect(listed.body.contains("203.0.113.7"))
        await gateway.stop()
    }

    @Test func forwardedForIsIgnoredFromPeersThatAreNotTrustedProxies() async throws {
        let gateway = try await TestGateway.start()
        let token = try await gateway.token("alice")
        let opened = try await gateway.request(.POST, "/v1/lp/open", token: token, body: "{}", headers: [("X-Forwarded-For", "203.0.113.7")])
        #expect(opened.status == 200)
        let listed = try await gateway.request(.GET, "/admin/connections?user=alice", token: "admin-test-token", admin: true)
        #expect(!listed.body.contains("203.0.113.7"))
        #expect(listed.body.contains("127.0.0.1"))
        await gateway.stop()
    }

    @Test func aRequestBodyThatTricklesIsClosed() async throws {
        let gateway = try await TestGateway.start(extra: "limits: { request_timeout_ms: 300 }")
        let token = try await gateway.token("alice")
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: "127.0.0.1", port: gateway.port).get()
        let head = "POST /v1/lp/open HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer \(token)\r\nContent-Length: 100\r\n\r\n{"
        try await channel.writeAndFlush(ByteBuffer(string: head)).get()
        // One more byte now and then is not progress enough: the deadline closes it.
        let started = Date()
        try await channel.closeFuture.get()
        #expect(Date().timeIntervalSince(started) < 20)
        // Nothing was opened for it.
        #expect(gateway.bootstrap.application.lifecycleCounts["longpoll_sessions"] == 0)
        await gateway.stop()
    }

    @Test func readyzAnswers503WhileTheStoreCannotCommit() async throws {
        let gateway = try await TestGateway.start()
        #expect(try await gateway.request(.GET, "/readyz", admin: true).status == 200)
        let (alice, _) = try await gateway.connect("alice")
        // The send's commit fails, and so does the probe of the first /readyz.
        gateway.bootstrap.faults.failNextCommits(2, with: .unavailable("disk full"))
        alice.send(sendFrame(to: .user("bob"), body: "x", id: "r1", ref: "r"))
        #expect(try await alice.nextFrame()["code"]?.stringValue == "unavailable")
        #expect(try await gateway.request(.GET, "/readyz", admin: true).status == 503)
        // The store is back: the next probe finds it, and sends work again.
        #expect(try await gateway.request(.GET, "/readyz", admin: true).status == 200)
        alice.send(sendFrame(to: .user("bob"), body: "x", id: "r2"))
        #expect(try await alice.nextFrame()["type"]?.stringValue == "ack")
        await gateway.stop()
    }

    @Test func theGroupCapHoldsInTheStore() async throws {
        let gateway = try await TestGateway.start(extra: "limits: { max_group_members: 3 }")
        let owner = try await gateway.token("owner")
        let created = try await gateway.request(.POST, "/v1/groups", token: owner, body: #"{"id":"g_cap","name":"cap","members":["a"]}"#)
        #expect(created.status == 201)
        // Removing people who are not members no longer buys room for more.
        let over = try await gateway.request(
            .POST, "/v1/groups/g_cap/members", token: owner, body: #"{"add":["b","c"],"remove":["x","y"]}"#)
        #expect(over.status == 413)
        #expect(over.body.contains("too_large"))
        let group = try await gateway.request(.GET, "/v1/groups/g_cap", token: owner)
        #expect(group.json?["members"]?.arrayValue?.count == 2, "nothing of the refused change was kept")
        // Within the cap it works; a real removal makes room.
        #expect(try await gateway.request(.POST, "/v1/groups/g_cap/members", token: owner, body: #"{"add":["b"]}"#).status == 200)
        #expect(try await gateway.request(.POST, "/v1/groups/g_cap/members", token: owner, body: #"{"add":["c"],"remove":["a"]}"#).status == 200)
        // The store itself refuses, whoever calls it.
        await #expect(throws: GatewayError.self) {
            _ = try await gateway.gateway.stores.groups.updateMembers(of: "g_cap", add: ["d"], remove: [], maxMembers: 3)
        }
        await gateway.stop()
    }

    @Test func membersThatIsNotAnArrayIsRefused() async throws {
        let gateway = try await TestGateway.start()
        let owner = try await gateway.token("owner")
        let answer = try await gateway.request(.POST, "/v1/groups", token: owner, body: #"{"name":"n","members":"bob"}"#)
        #expect(answer.status == 400)
        #expect(answer.body.contains("members"))
        await gateway.stop()
    }
}

/// Issue 9: nobody who has read the README can mint tokens for a gateway reachable from the
/// network, and the admin port needs a real token off loopback.
@Suite("Secure defaults")
struct SecureDefaultTests {
    static func configuration(publicHost: String, secret: String, adminHost: String = "127.0.0.1", adminToken: String = "change-me") throws
        -> GatewayConfiguration
    {
        let yaml = """
            listen: { public: { host: \(publicHost), port: 0 }, admin: { host: \(adminHost), port: 0, token: "\(adminToken)" } }
            store: { kind: sqlite, path: "\(FileManager.default.temporaryDirectory.path)/secure-\(UUID().uuidString).db" }
            pipeline:
              - stage: auth
                settings: { hs256_secret: "\(secret)" }
              - stage: id
              - stage: persist
              - stage: fanout
            """
        return try ConfigLoader.load(text: yaml, file: "secure.yaml", environment: [:])
    }

    @Test func thePublishedSecretIsRefusedOffLoopback() async throws {
        let configuration = try Self.configuration(publicHost: "0.0.0.0", secret: "dev-only-secret-change-me-0123456789")
        await #expect {
            _ = try await Bootstrap.make(configuration: configuration, logger: .init(label: "test"))
        } throws: { error in
            "\(error)".contains("published development secret") && "\(error)".contains("JWT_SECRET")
        }
    }

    @Test func thePublishedSecretIsAcceptedOnLoopbackAndAnOwnSecretAnywhere() async throws {
        _ = try await Bootstrap.make(
            configuration: try Self.configuration(publicHost: "127.0.0.1", secret: "dev-only-secret-change-me-0123456789"), logger: .init(label: "test"))
        _ = try await Bootstrap.make(
            configuration: try Self.configuration(publicHost: "0.0.0.0", secret: "an-own-secret-of-at-least-32-bytes-xyz"), logger: .init(label: "test"))
    }

    @Test func aShortOrPublishedAdminTokenIsRefusedOffLoopback() throws {
        for token in ["change-me", "short", ""] {
            #expect(throws: (any Error).self, "admin token '\(token)' off loopback") {
                _ = try Self.configuration(publicHost: "127.0.0.1", secret: "an-own-secret-of-at-least-32-bytes-xyz", adminHost: "0.0.0.0", adminToken: token)
            }
        }
        _ = try Self.configuration(
            publicHost: "127.0.0.1", secret: "an-own-secret-of-at-least-32-bytes-xyz", adminHost: "0.0.0.0", adminToken: "a-real-admin-token-0123")
    }
}
