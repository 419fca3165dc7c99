import ChatClient
import Foundation
import GatewayCore
import GatewayTesting
import MediaStore
import NIOCore
import NIOPosix
import StageAuth
import Synchronization
import Testing

/// The `ChatClient` SDK against real gateways: a child process killed with SIGKILL mid-send
/// and restarted (on both transports), and a proxy that drops a frame (a gap to sync over).
@Suite("ChatClient SDK")
struct ChatClientTests {
    static let secret = "client-secret-0123456789-0123456789-abcdef"

    static func token(_ user: String) async throws -> String {
        try await AuthStageFactory.mintHS256(secret: secret, user: user, ttlSeconds: 3600, now: SystemClock().nowMillis(), issuer: nil, audience: nil)
    }

    /// A port free right now (the restarted gateway must come back on the same one).
    static func freePort() async throws -> Int {
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton).bind(host: "127.0.0.1", port: 0).get()
        let port = channel.localAddress?.port ?? 0
        try await channel.close()
        return port
    }

    static func config(directory: URL, port: Int) throws -> String {
        let path = directory.appendingPathComponent("config.yaml").path
        let yaml = """
            node: { id: client-node, worker_id: 5 }
            listen:
              public: { host: 127.0.0.1, port: \(port) }
              admin: { host: 127.0.0.1, port: 0, token: admin-test-token }
            store: { kind: sqlite, path: "\(directory.path)/chat.db", durability: full }
            longpoll: { session_ttl_ms: 5000 }
            pipeline:
              - stage: auth
                settings: { hs256_secret: "\(secret)" }
              - stage: id
              - stage: persist
              - stage: fanout
            """
        try yaml.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// A child gateway on a port that was free a moment ago; another test may take such a port
    /// in between, so a failed start is tried again on another one.
    static func startOnAFreePort(directory: URL) async throws -> (ChildGateway, Int, String) {
        var attempt = 0
        while true {
            attempt += 1
            let port = try await freePort()
            let path = try config(directory: directory, port: port)
            do {
                return (try await ChildGateway.start(configPath: path), port, path)
            } catch where attempt < 5 {
                continue
            }
        }
    }

    static func client(_ user: String, port: Int, transport: ChatClientConfiguration.TransportPreference) -> ChatClient {
        ChatClient(
            configuration: .init(
                port: port, transport: transport, device: "\(user)-test", backoff: Backoff(baseMs: 20, maxMs: 300),
                requestTimeoutMs: 3000, ackTimeoutMs: 3000, pollTimeoutMs: 2000),
            token: { try await token(user) })
    }

    /// Collects the messages a client hands to the app.
    final class Inbox: Sendable {
        struct Seen: Sendable {
            var messages: [ChatMessage] = []
            var syncs: [Int64] = []
            var transports: [ChatTransportKind] = []
        }

        /// What the client handed over so far; tests wait on it.
        let seen = Observed(Seen())
        let reader: Task<Void, Never>

        init(_ client: ChatClient) {
            let seen = self.seen
            reader = Task {
                for await event in client.events {
                    switch event {
                    case .message(let message): seen.update { $0.messages.append(message) }
                    case .synced(let seq): seen.update { $0.syncs.append(seq) }
                    case .state(.open(let kind)): seen.update { $0.transports.append(kind) }
                    default: break
                    }
                }
            }
        }

        var messages: [ChatMessage] { seen.value.messages }
        var syncs: [Int64] { seen.value.syncs }
        var transports: [ChatTransportKind] { seen.value.transports }

        /// Waits until `count` messages arrived (or `seconds` passed).
        func wait(for count: Int, seconds: Int = 30) async {
            _ = await seen.wait(timeout: .seconds(seconds)) { $0.messages.count >= count }
        }
    }

    @Test(arguments: [ChatClientConfiguration.TransportPreference.webSocket, .longPoll])
    func killNineMidSendDeliversEveryMessageOnceInOrder(transport: ChatClientConfiguration.TransportPreference) async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("chatgate-sdk-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        var (server, port, configPath) = try await Self.startOnAFreePort(directory: directory)
        // No gateway left running when the test throws (`server` is the one running then).
        defer { server.killNow() }

        let alice = Self.client("alice", port: port, transport: transport)
        let bob = Self.client("bob", port: port, transport: transport)
        let inbox = Inbox(bob)
        try await alice.connect()
        try await bob.connect()
        #expect(await alice.transportKind == (transport == .webSocket ? .webSocket : .longPoll))

        // 60 sends; the gateway dies (SIGKILL) after the 20th is submitted, with sends in flight,
        // and the app keeps submitting while it is down.
        var handles: [SendHandle] = []
        for n in 0..<60 {
            handles.append(try await alice.submit(to: .user("bob"), body: ["n": .int(n)]))
            if n == 19 { await server.kill9() }
        }
        #expect(await alice.unacked > 0, "sends wait while the gateway is down")
        server = try await ChildGateway.start(configPath: configPath)

        var acks: [Ack] = []
        for handle in handles { acks.append(try await handle.ack()) }
        #expect(Set(acks.map(\.id)).count == 60, "one message per send")
        #expect(acks.map(\.seq) == (1...60).map(Int64.init), "alice's inbox holds them in submission order")

        // bob's app got each message once, in order, across the restart (live or through sync).
        await inbox.wait(for: 60)
        #expect(inbox.messages.map { $0.body["n"]?.int64Value ?? -1 } == (0..<60).map(Int64.init))
        #expect(await bob.curMaxSeq == 60)
        #expect(inbox.transports.count >= 2, "bob reconnected")

        // The store agrees: bob's inbox has 60 messages from alice, no duplicates.
        let sync = try await bob.api(.GET, "/v1/sync?since=0&limit=1000")
        let stored = sync["messages"]?.arrayValue ?? []
        #expect(stored.count == 60)
        #expect(Set(stored.compactMap { $0["client_msg_id"]?.stringValue }).count == 60)

        await alice.close()
        await bob.close()
        _ = await inbox.reader.value
        _ = await server.terminate()
    }

    @Test func aDroppedFrameIsAGapAndTriggersASync() async throws {
        let gateway = try await TestGateway.start(extra: "")
        let proxy = try await FrameDroppingProxy.start(upstreamPort: gateway.port, dropping: "\"text\":\"two\"")
        let token = { @Sendable (user: String) in try await gateway.token(user) }
        let alice = ChatClient(configuration: .init(port: gateway.port, transport: .webSocket), token: { try await token("alice") })
        let bob = ChatClient(configuration: .init(port: proxy.port, transport: .webSocket), token: { try await token("bob") })
        let inbox = Inbox(bob)
        try await alice.connect()
        try await bob.connect()
        // bob's sync after connecting is done: what follows comes live.
        #expect(await inbox.seen.wait { !$0.syncs.isEmpty })
        for text in ["one", "two", "three"] {
            _ = try await alice.send(to: .user("bob"), body: ["text": .string(text)])
        }
        await inbox.wait(for: 3, seconds: 10)
        _ = await inbox.seen.wait { $0.syncs.contains(3) }
        #expect(proxy.dropped == 1, "the proxy dropped the frame of 'two'")
        #expect(inbox.messages.map { $0.body["text"]?.stringValue ?? "" } == ["one", "two", "three"])
        #expect(inbox.syncs == [0, 3], "seq 3 after 1 started a sync that caught up to 3")
        #expect(await bob.curMaxSeq == 3)
        await alice.close()
        await bob.close()
        await proxy.stop()
        await gateway.stop()
    }

    /// The SDK's media calls against the real media stage: an upload becomes an attachment that
    /// reaches the recipient with its `url` and `thumbnail_url`, both downloaded through the SDK.
    @Test func mediaUploadedThroughTheSDKArrivesAsAnAttachmentTheRecipientDownloads() async throws {
        let gateway = try await MediaTests.start()
        let token = { @Sendable (user: String) in try await gateway.token(user) }
        let alice = ChatClient(configuration: .init(port: gateway.port, transport: .webSocket), token: { try await token("alice") })
        let bob = ChatClient(configuration: .init(port: gateway.port, transport: .longPoll), token: { try await token("bob") })
        let inbox = Inbox(bob)
        try await alice.connect()
        try await bob.connect()
        let png = try Thumbnailer.syntheticImage(width: 640, height: 480, format: ".png")
        let uploaded = try await alice.upload(png, contentType: "image/png", name: "cat.png")
        let id = try #require(uploaded["media_id"]?.stringValue)
        #expect(uploaded["width"]?.int64Value == 640)
        _ = try await alice.send(to: .user("bob"), body: ["text": "a cat"], attachments: [["media_id": .string(id)]])
        await inbox.wait(for: 1, seconds: 10)
        let attachment = try #require(inbox.messages.first?.attachments.first)
        #expect(attachment["media_id"]?.stringValue == id)
        let url = try #require(attachment["url"]?.stringValue)
        let original = try await bob.download(url)
        #expect(original.bytes == png, "the recipient gets the uploaded bytes")
        #expect(original.contentType == "image/png")
        let thumbnailURL = try #require(attachment["thumbnail_url"]?.stringValue)
        let thumbnail = try await bob.download(thumbnailURL)
        #expect(thumbnail.contentType == "image/jpeg")
        #expect(Array(thumbnail.bytes.prefix(2)) == [0xFF, 0xD8], "a JPEG")
        // A third user may not read it.
        let carol = ChatClient(configuration: .init(port: gateway.port, transport: .webSocket), token: { try await token("carol") })
        await #expect(throws: ChatError.self) { _ = try await carol.download(url) }
        await alice.close()
        await bob.close()
        await carol.close()
        await gateway.stop()
    }

    @Test func autoFallsBackToLongPollWhenTheWebSocketCannotOpen() async throws {
        let gateway = try await TestGateway.start()
        // A proxy that carries plain HTTP but closes WebSocket upgrades.
        let proxy = try await FrameDroppingProxy.start(upstreamPort: gateway.port, dropping: nil)
        let token = { @Sendable (user: String) in try await gateway.token(user) }
        let alice = ChatClient(configuration: .init(port: proxy.port, transport: .auto), token: { try await token("alice") })
        let bob = ChatClient(configuration: .init(port: gateway.port, transport: .auto), token: { try await token("bob") })
        let inbox = Inbox(bob)
        try await alice.connect()
        try await bob.connect()
        #expect(await alice.transportKind == .longPoll)
        #expect(await bob.transportKind == .webSocket)
        let ack = try await alice.send(to: .user("bob"), body: ["text": "over long-poll"])
        await inbox.wait(for: 1, seconds: 10)
        #expect(inbox.messages.map(\.id) == [ack.id])
        #expect(inbox.messages.first?.body["text"]?.stringValue == "over long-poll")
        await alice.close()
        await bob.close()
        await proxy.stop()
        await gateway.stop()
    }

    @Test func theHandshakeUsesARandomKeyAndChecksTheAccept() async throws {
        let server = try await FakeUpgradeServer.start()
        let client = ChatClient(
            configuration: .init(port: server.port, transport: .webSocket, backoff: Backoff(baseMs: 5, maxMs: 20), requestTimeoutMs: 2000),
            token: { "not-a-token" })
        let states = Task {
            var reasons: [String] = []
            for await event in client.events {
                if case .state(.reconnecting(_, let reason)) = event { reasons.append(reason) }
                if case .state(.open) = event { reasons.append("OPENED") }
                if reasons.count >= 3 { break }
            }
            return reasons
        }
        let connected = Task { try await client.connect() }
        let reasons = await states.value
        await client.close()
        await #expect(throws: ChatError.closed) { try await connected.value }
        #expect(!reasons.contains("OPENED"), "a wrong Sec-WebSocket-Accept never opens a session")
        let keys = server.keys.withLock { $0 }
        #expect(keys.count >= 3)
        #expect(Set(keys).count == keys.count, "a fresh key per handshake: \(keys)")
        #expect(keys.allSatisfy { Data(base64Encoded: $0)?.count == 16 }, "16 random bytes in base64")
        await server.stop()
    }

    @Test func aRefusedTokenIsRefreshedThroughTheCallback() async throws {
        let gateway = try await TestGateway.start()
        final class Calls: Sendable {
            /// Guards how often the token was asked for.
            let count = Mutex(0)
        }
        let calls = Calls()
        let good = try await gateway.token("carol")
        let client = ChatClient(
            configuration: .init(port: gateway.port, transport: .webSocket, backoff: Backoff(baseMs: 5, maxMs: 50)),
            token: {
                // The first token is garbage (as an expired one would be); then a good one.
                calls.count.withLock { $0 += 1; return $0 } == 1 ? "garbage" : good
            })
        let hello = try await client.connect()
        #expect(hello["user"]?.stringValue == "carol")
        #expect(calls.count.withLock { $0 } == 2)
        // A frame over max_frame_bytes is refused locally, not sent (the gateway would close 1009).
        await #expect(throws: ChatError.self) {
            try await client.send(to: .user("dave"), body: .string(String(repeating: "x", count: 70_000)))
        }
        #expect(await client.state == .open(.webSocket))
        await client.close()
        await gateway.stop()
    }

    @Test func fullJitterStaysUnderTheCap() {
        let backoff = Backoff(baseMs: 100, maxMs: 5000)
        #expect(backoff.cap(attempt: 0) == 100)
        #expect(backoff.cap(attempt: 3) == 800)
        #expect(backoff.cap(attempt: 40) == 5000)
        let delays = (0..<200).map { _ in backoff.delay(attempt: 5) }
        #expect(delays.allSatisfy { (0..<3200).contains($0) })
        #expect(Set(delays).count > 50, "jittered, not fixed")
    }
}
