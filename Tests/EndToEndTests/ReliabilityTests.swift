import AsyncHTTPClient
import Foundation
import GatewayCore
import GatewayTesting
import NIOCore
import NIOHTTP1
import NIOPosix
import StageAuth
import Testing

/// RELIABILITY.md rows that had no test of their own: a long-poll response lost in flight, an
/// ack lost then resent on a new connection, over-capacity refusals, a 10 MB string, and
/// thousands of idle connections held with heartbeats.
@Suite("Reliability rows")
struct ReliabilityTests {
    /// A user's whole inbox through `GET /v1/sync`.
    static func inbox(_ gateway: TestGateway, _ user: String) async throws -> [JSONObject] {
        var since: Int64 = 0
        var all: [JSONObject] = []
        let token = try await gateway.token(user)
        while true {
            let answer = try await gateway.request(.GET, "/v1/sync?since=\(since)&limit=1000", token: token)
            #expect(answer.status == 200)
            let json = try #require(answer.json)
            all += (json["messages"]?.arrayValue ?? []).compactMap(\.objectValue)
            since = json["next"]?.int64Value ?? since
            if json["more"] != true { return all }
        }
    }

    /// The next frame of `type` (others skipped).
    static func next(_ type: String, on stream: WebSocketStream) async throws -> JSONObject {
        while true {
            let frame = try await stream.nextFrame()
            if frame["type"]?.stringValue == type { return frame }
        }
    }

    // MARK: Durability and delivery

    @Test func aLongPollResponseLostInFlightIsRecoveredBySync() async throws {
        let gateway = try await TestGateway.start()
        let log = DurabilityChecker()
        let bob = try await LongPollClient.open(gateway, user: "bob")
        let seenBefore = try #require(bob.hello["inbox_seq"]?.int64Value)
        let (alice, _) = try await gateway.connect("alice")
        for n in 1...2 {
            log.sent(sender: "alice", clientMsgID: "lp-\(n)", to: .user("bob"), recipients: ["alice", "bob"])
            alice.send(sendFrame(to: .user("bob"), body: .string("m\(n)"), id: "lp-\(n)"))
            let ack = try await Self.next("ack", on: alice)
            log.acked(sender: "alice", clientMsgID: "lp-\(n)", id: try #require(ack["id"]?.stringValue))
            if n == 1 {
                // The poll that carries m1: the client reads the response's head, then its
                // connection dies before the body is read. m1 left the session's queue with it.
                let lost = try await RawHTTP.send(
                    port: gateway.port,
                    "GET /v1/lp/poll?session=\(bob.session)&timeout_ms=5000 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(bob.token)\r\n\r\n")
                #expect(lost.hasPrefix("HTTP/1.1 200"), "\(lost.prefix(80))")
            }
        }
        // The next poll brings m2 only: its seq skips one, which tells the client to sync.
        let frames = try await bob.poll(until: "message")
        let messages = frames.filter { $0["type"]?.stringValue == "message" }
        #expect(messages.map { $0["client_msg_id"]?.stringValue } == ["lp-2"])
        let seq = try #require(messages.first?["seq"]?.int64Value)
        #expect(seq == seenBefore + 2, "the gap the client sees")
        // sync from the last seq it saw returns what was lost, in order.
        let answer = try await gateway.request(.GET, "/v1/sync?since=\(seenBefore)", token: bob.token)
        let synced = (answer.json?["messages"]?.arrayValue ?? []).compactMap { $0["client_msg_id"]?.stringValue }
        #expect(synced == ["lp-1", "lp-2"])
        let report = log.verify(inboxes: ["alice": try await Self.inbox(gateway, "alice"), "bob": try await Self.inbox(gateway, "bob")])
        #expect(report.counts.isClean, "\(report)")
        await gateway.stop()
    }

    @Test func anAckLostWithItsConnectionIsAnsweredAgainOnANewOneAsADuplicate() async throws {
        let gateway = try await TestGateway.start()
        let log = DurabilityChecker()
        let (bob, _) = try await gateway.connect("bob")
        let (first, _) = try await gateway.connect("alice")
        log.sent(sender: "alice", clientMsgID: "once", to: .user("bob"), recipients: ["alice", "bob"])
        first.send(sendFrame(to: .user("bob"), body: "hello", id: "once"))
        // The commit is done (bob has it); alice's connection drops before she reads the ack.
        let delivered = try await Self.next("message", on: bob)
        let id = try #require(delivered["id"]?.stringValue)
        first.raw.disconnect()
        // A new connection resends the same client_msg_id: the same id, marked duplicate.
        let (second, _) = try await gateway.connect("alice")
        log.sent(sender: "alice", clientMsgID: "once", to: .user("bob"), recipients: ["alice", "bob"])
        second.send(sendFrame(to: .user("bob"), body: "hello", id: "once"))
        let ack = try await Self.next("ack", on: second)
        #expect(ack["id"]?.stringValue == id)
        #expect(ack["duplicate"] == true)
        log.acked(sender: "alice", clientMsgID: "once", id: try #require(ack["id"]?.stringValue))
        // Nothing new reached bob: his next frame answers his own ping.
        bob.send(["type": "ping", "ref": "after"])
        #expect(try await bob.nextFrame()["ref"]?.stringValue == "after")
        let report = log.verify(inboxes: ["alice": try await Self.inbox(gateway, "alice"), "bob": try await Self.inbox(gateway, "bob")])
        #expect(report.counts.isClean, "\(report)")
        #expect(report.storedMessages == 1)
        await gateway.stop()
    }

    @Test func aDeviceOfflineWhileAThousandMessagesArriveGetsExactlyThoseInOrder() async throws {
        let gateway = try await TestGateway.start()
        let log = DurabilityChecker()
        // bob's phone has seen everything so far, then goes offline; his laptop stays online.
        let (phone, phoneHello) = try await gateway.connect("bob", device: "phone")
        let lastSeen = try #require(phoneHello["inbox_seq"]?.int64Value)
        phone.close()
        _ = try await phone.closeCode()  // the client closes its end at once
        let (laptop, _) = try await gateway.connect("bob", device: "laptop")
        let (alice, _) = try await gateway.connect("alice")
        let total = 1000
        var acked: [String] = []
        for start in stride(from: 0, to: total, by: 50) {
            // 50 in flight at a time; acks come back in order.
            for n in start..<start + 50 {
                log.sent(sender: "alice", clientMsgID: "off-\(n)", to: .user("bob"), recipients: ["alice", "bob"])
                alice.send(sendFrame(to: .user("bob"), body: .int(n), id: "off-\(n)"))
            }
            for _ in 0..<50 {
                let ack = try await Self.next("ack", on: alice)
                let id = try #require(ack["id"]?.stringValue)
                log.acked(sender: "alice", clientMsgID: try #require(ack["client_msg_id"]?.stringValue), id: id)
                acked.append(id)
            }
        }
        // The laptop saw them live; the phone comes back and syncs from its last seq.
        var live = 0
        while live < total {
            if try await laptop.nextFrame()["type"]?.stringValue == "message" { live += 1 }
        }
        let (back, _) = try await gateway.connect("bob", device: "phone")
        var synced: [JSONObject] = []
        var since = lastSeen
        while true {
            back.send(["type": "sync", "since": .int(since), "limit": 1000, "ref": "s"])
            let page = try await Self.next("sync", on: back)
            synced += (page["messages"]?.arrayValue ?? []).compactMap(\.objectValue)
            since = page["next"]?.int64Value ?? since
            if page["more"] != true { break }
        }
        #expect(synced.compactMap { $0["id"]?.stringValue } == acked, "exactly those 1,000, in order")
        #expect(synced.compactMap { $0["seq"]?.int64Value } == Array((lastSeen + 1)...(lastSeen + Int64(total))))
        let report = log.verify(inboxes: ["alice": try await Self.inbox(gateway, "alice"), "bob": try await Self.inbox(gateway, "bob")])
        #expect(report.counts.isClean, "\(report)")
        await gateway.stop()
    }

    // MARK: Load and backpressure

    @Test func overCapacityHandshakesAndLongPollOpensAre503AndOthersAreUnaffected() async throws {
        // Three places: alice's socket, the test's kept-alive HTTP socket, bob's long-poll session.
        let gateway = try await TestGateway.start(extra: "limits: { max_connections: 3 }")
        let (alice, _) = try await gateway.connect("alice")
        let bob = try await LongPollClient.open(gateway, user: "bob")
        // Full: a WebSocket handshake and a long-poll open are refused with 503 and Retry-After.
        let carol = try await gateway.token("carol")
        // (The socket is answered at accept, before any request: a handshake written to it may
        // find it already closed, so the test only reads.)
        let refused = try await RawHTTP.answerBeforeAnyRequest(port: gateway.port)
        #expect(refused.hasPrefix("HTTP/1.1 503"), "\(refused.prefix(80))")
        #expect(refused.lowercased().contains("retry-after: 5"))
        let open = try await gateway.request(.POST, "/v1/lp/open", token: carol, body: "")
        #expect(open.status == 503)
        #expect(open.json?["error"]?["code"]?.stringValue == "unavailable")
        // Those inside still talk; the health check answers.
        alice.send(sendFrame(to: .user("bob"), body: "still here", id: "c1"))
        #expect(try await Self.next("ack", on: alice)["client_msg_id"]?.stringValue == "c1")
        #expect(try await bob.poll(until: "message").contains { $0["client_msg_id"]?.stringValue == "c1" })
        #expect(try await gateway.request(.GET, "/healthz", admin: true).status == 200)
        // Once one leaves, a newcomer gets in.
        alice.close()
        _ = try await alice.closeCode()  // the client closes its end at once
        var admitted = false
        for _ in 0..<100 where !admitted {
            // While full, the refusal can come before the handshake is even written (the client
            // then sees its write fail).
            let attempt = try? await WebSocketStream.connect(port: gateway.port, headers: [("Authorization", "Bearer \(carol)")])
            admitted = attempt?.status == 101
            if !admitted { try await Task.sleep(for: .milliseconds(20)) }  // the close is processed on another loop
        }
        #expect(admitted)
        await gateway.stop()
    }

    @Test
    func aTokenLessUpgradeHoldsItsPlaceSoItsAuthFrameIsNeverOverCapacity() async throws {
        // A minute for the auth frame (the default 5 s is real time the steps below could use
        // up on a loaded machine).
        let gateway = try await TestGateway.start(extra: "limits: { max_connections: 1, auth_timeout_ms: 60000 }")
        // A token-less upgrade takes the only place; the next socket is answered 503 at accept,
        // token or not, and the first one's `auth` then opens its session.
        let (late, lateStatus, _) = try await WebSocketStream.connect(port: gateway.port)
        #expect(lateStatus == 101)
        let refused = try await RawHTTP.answerBeforeAnyRequest(port: gateway.port)
        #expect(refused.hasPrefix("HTTP/1.1 503"), "\(refused)")
        let bobToken = try await gateway.token("bob")
        late.send(["type": "auth", "token": .string(bobToken), "ref": "a"])
        #expect(try await late.nextFrame()["type"]?.stringValue == "hello")
        #expect(gateway.gateway.hub.connectionCount == 1)
        await gateway.stop()
    }

    // MARK: Input

    /// Writes `request` on a fresh connection and returns all the server sent once it closed
    /// the connection (or `nil` if it was still open after 10 s).
    static func untilClosed(port: Int, _ request: String) async throws -> String? {
        let collector = RawHTTP.ResponseCollector()
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelInitializer { channel in channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(collector) } }
            .connect(host: "127.0.0.1", port: port).get()
        try await channel.writeAndFlush(ByteBuffer(string: request)).get()
        let timeout = channel.eventLoop.scheduleTask(in: .seconds(10)) { channel.close(promise: nil) }
        try await channel.closeFuture.get()
        timeout.cancel()
        return collector.closed ? collector.text : nil
    }

    @Test func smuggledRequestsAre400AndCloseAndThePipelinedOneIsNeverServed() async throws {
        let gateway = try await TestGateway.start()
        let second = "GET /v1/discover HTTP/1.1\r\nHost: x\r\n\r\n"
        let requests = [
            "POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + second,
            "POST /v1/messages HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n" + second,
            "POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 41\r\n\r\nabcde" + second,
            "POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 41\r\n\r\nabcde" + second,
        ]
        for request in requests {
            let answer = try #require(try await Self.untilClosed(port: gateway.port, request), "the connection stayed open: \(request.prefix(90))")
            #expect(answer.hasPrefix("HTTP/1.1 400"), "\(answer.prefix(80))")
            #expect(answer.components(separatedBy: "HTTP/1.1 ").count == 2, "one response only: \(answer)")
            #expect(!answer.contains("ws_url"), "the pipelined request was served")
        }
        // A well-formed pipelined pair is served in order (the refusals above are not blanket).
        let fine = try await RawHTTP.send(port: gateway.port, second)
        #expect(fine.hasPrefix("HTTP/1.1 200"), "\(fine.prefix(80))")
        await gateway.stop()
    }

    @Test func corsNeverAllowsAnUnknownOriginOrAWildcard() async throws {
        let gateway = try await TestGateway.start(
            extra: "listen: { public: { host: 127.0.0.1, port: 0, allowed_origins: [\"https://app.example\"] }, admin: { host: 127.0.0.1, port: 0, token: admin-test-token } }")
        let token = try await gateway.token("alice")
        for origin in ["https://evil.example", "null", "https://app.example.evil.example", "http://app.example", "*"] {
            for (method, path) in [(HTTPMethod.OPTIONS, "/v1/lp/send"), (.OPTIONS, "/v1/messages"), (.GET, "/v1/sync")] {
                let answer = try await gateway.request(
                    method, path, token: method == .GET ? token : nil,
                    headers: [("Origin", origin), ("Access-Control-Request-Method", "POST"), ("Access-Control-Request-Headers", "authorization")])
                #expect(answer.headers["access-control-allow-origin"] == nil, "\(origin) \(path)")
                #expect(answer.headers["access-control-allow-credentials"] == nil, "\(origin) \(path)")
            }
        }
        let known = try await gateway.request(.OPTIONS, "/v1/lp/send", headers: [("Origin", "https://app.example"), ("Access-Control-Request-Method", "POST")])
        #expect(known.headers["access-control-allow-origin"] == "https://app.example")
        #expect(known.headers["vary"]?.lowercased().contains("origin") ?? false, "Vary: Origin, so a cache never serves one origin's answer to another")
        await gateway.stop()
    }

    /// The head of a masked text frame declaring `length` bytes, and the first `prefix` of them:
    /// the gateway refuses at the header, so the rest need not be sent (sending all of it would
    /// race the close: unread bytes make the kernel answer with a reset).
    static func declaredFrame(length: UInt64, prefix: Int) -> ByteBuffer {
        var frame = ByteBuffer()
        frame.writeBytes([0x81, 0xFF])
        frame.writeInteger(length)
        frame.writeBytes([0x11, 0x22, 0x33, 0x44])
        frame.writeBytes(Array("{\"type\":\"send\",\"to\":{\"user\":\"bob\"},\"client_msg_id\":\"big\",\"body\":\"".utf8))
        frame.writeRepeatingByte(UInt8(ascii: "x"), count: prefix)
        return frame
    }

    /// A send frame whose body is a string of `bytes` bytes.
    static func sendWithString(bytes: Int, id: String) -> String {
        "{\"type\":\"send\",\"to\":{\"user\":\"bob\"},\"client_msg_id\":\"\(id)\",\"ref\":\"\(id)\",\"body\":\"\(String(repeating: "x", count: bytes))\"}"
    }

    @Test func aTenMegabyteStringIsRefusedEverywhereAndNothingIsStored() async throws {
        let gateway = try await TestGateway.start()
        let frame = Self.sendWithString(bytes: 10 << 20, id: "big")
        // WebSocket: closed with 1009 from the frame header, before the payload is read.
        let (alice, _) = try await gateway.connect("alice")
        try await alice.raw.writeRaw(Self.declaredFrame(length: UInt64(frame.utf8.count), prefix: 4096))
        #expect(try await alice.closeCode() == 1009)
        // Long-poll: the request body is over its bound (413); a frame over max_frame_bytes
        // inside a body that fits gets too_large.
        let lp = try await LongPollClient.open(gateway, user: "alice")
        let tooBig = try await gateway.request(.POST, "/v1/lp/send?session=\(lp.session)", token: lp.token, body: frame)
        #expect(tooBig.status == 413)
        #expect(tooBig.json?["error"]?["code"]?.stringValue == "too_large")
        let replies = try await lp.send([try JSONParser.parse(Self.sendWithString(bytes: 200_000, id: "m"))])
        #expect(replies.first?["code"]?.stringValue == "too_large")
        #expect(replies.first?["ref"]?.stringValue == "m")
        // REST: 413.
        let rest = try await gateway.request(.POST, "/v1/messages", token: lp.token, body: frame)
        #expect(rest.status == 413)
        // Nothing stored for anyone.
        #expect(try await Self.inbox(gateway, "alice").isEmpty)
        #expect(try await Self.inbox(gateway, "bob").isEmpty)
        await gateway.stop()
    }

    @Test func tenMegabyteStringsLeaveTheChildsMemoryFlat() async throws {
        let child = try await FuzzTarget.start(name: "huge")
        defer { child.cleanUp() }
        let frame = Self.sendWithString(bytes: 10 << 20, id: "big")
        let token = try await child.token("alice")
        // Each round: a WebSocket frame declaring 10 MB (1009), and 10 MB long-poll and REST
        // bodies (413). One round warms the allocator; more must not grow the RSS.
        func round() async throws {
            let (stream, status, _) = try await WebSocketStream.connect(port: child.server.publicPort, headers: [("Authorization", "Bearer \(token)")])
            #expect(status == 101)
            try await stream.raw.writeRaw(Self.declaredFrame(length: UInt64(frame.utf8.count), prefix: 4096))
            #expect(try await stream.closeCode(timeout: 30) == 1009)
            for path in ["/v1/messages"] {
                var request = HTTPClientRequest(url: "http://127.0.0.1:\(child.server.publicPort)\(path)")
                request.method = .POST
                request.headers.add(name: "Authorization", value: "Bearer \(token)")
                request.headers.add(name: "Content-Type", value: "application/json")
                request.body = .bytes(ByteBuffer(string: frame))
                let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
                #expect(response.status.code == 413)
                _ = try await response.body.collect(upTo: 1 << 20)
            }
        }
        try await round()
        let before = try #require(child.rssBytes())
        for _ in 0..<10 { try await round() }
        let after = try #require(child.rssBytes())
        #expect(after - before < 16 << 20, "RSS grew \((after - before) >> 20) MiB over 10 rounds of 10 MB")
        #expect(try await child.inbox("alice").isEmpty)
        #expect(try await child.inbox("bob").isEmpty)
        let status = await child.server.terminate()
        #expect(status == 0)
    }

    @Test(.enabled(if: HeavyTests.enabled, HeavyTests.reason))
    func thousandsOfIdleConnectionsHeldWithHeartbeatsAreNeverDropped() async throws {
        let count = ProcessInfo.processInfo.environment["CHATGATE_IDLE_CONNECTIONS"].flatMap(Int.init) ?? 2000
        // The sweep reads the injected clock: who is silent is exact however loaded the machine.
        let clock = TestClock()
        let gateway = try await TestGateway.start(
            extra: "presence: { heartbeat_ms: 500, offline_after_ms: 2000 }\nlimits: { max_connections_per_ip: 1000000, max_connections: 1000000 }", clock: clock)
        let rssBefore = ProcessRSS.current()
        var streams: [WebSocketStream] = []
        streams.reserveCapacity(count)
        let batch = 50
        for start in stride(from: 0, to: count, by: batch) {
            let opened = try await withThrowingTaskGroup(of: WebSocketStream.self) { group in
                for n in start..<min(start + batch, count) {
                    group.addTask { try await gateway.connect("idle\(n)").0 }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            streams += opened
        }
        #expect(gateway.gateway.hub.connectionCount == count)
        let rssAfter = ProcessRSS.current()
        let (silent, _) = try await gateway.connect("silent")
        // Three heartbeat periods: each client pings (a WebSocket ping) 1.5 s of clock apart.
        for _ in 0..<3 {
            clock.advance(by: 1500)
            try await Self.pingAll(streams)
        }
        // The silent one is swept (proof the sweep runs), the others, active 1 s ago, are not.
        clock.advance(by: 1000)
        #expect(try await silent.closeCode() == 1000)
        try await Self.pingAll(streams)
        #expect(gateway.gateway.hub.connectionCount == count)
        if let rssBefore, let rssAfter {
            // Client and server share this process: an upper bound on the server's share.
            print("idle connections: \(count), \((rssAfter - rssBefore) / count) bytes of RSS per connection (client and server in one process)")
        }
        for stream in streams { stream.raw.disconnect() }
        await gateway.stop()
    }

    /// Every stream sends a WebSocket ping and must get its pong, not a close.
    static func pingAll(_ streams: [WebSocketStream]) async throws {
        for stream in streams { stream.raw.sendFrame(opcode: 0x9, payload: ByteBuffer(string: "hb")) }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (index, stream) in streams.enumerated() {
                group.addTask {
                    let event = try await stream.next(timeout: 30)
                    #expect(event == .pong(Array("hb".utf8)), "connection \(index): \(event)")
                }
                if index % 200 == 199 { try await group.waitForAll() }
            }
            try await group.waitForAll()
        }
    }
}

/// This process's resident set size, from /proc.
enum ProcessRSS {
    static func of(pid: Int32) -> Int? {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count >= 2, let kb = Int(fields[1]) else { return nil }
            return kb * 1024
        }
        return nil
    }

    static func current() -> Int? { of(pid: getpid()) }
}

/// The real executable as a child process with a config of its own, for tests that read its
/// memory from /proc: the fuzzer and the 10 MB frames.
struct FuzzTarget {
    static let secret = "fuzz-secret-0123456789-0123456789-abcdef"
    let directory: URL
    let server: ChildGateway

    static func start(name: String, extra: String = "") async throws -> FuzzTarget {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("chatgate-\(name)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let path = directory.appendingPathComponent("config.yaml").path
        let yaml = """
            node: { id: fuzz-node, worker_id: 5 }
            listen:
              public: { host: 127.0.0.1, port: 0 }
              admin: { host: 127.0.0.1, port: 0, token: admin-test-token }
            store: { kind: sqlite, path: "\(directory.path)/chat.db", durability: relaxed }
            \(extra)
            pipeline:
              - stage: auth
                settings: { hs256_secret: "\(secret)" }
              - stage: id
              - stage: persist
              - stage: fanout
            """
        try yaml.write(toFile: path, atomically: true, encoding: .utf8)
        return FuzzTarget(directory: directory, server: try await ChildGateway.start(configPath: path))
    }

    func token(_ user: String) async throws -> String {
        try await AuthStageFactory.mintHS256(secret: Self.secret, user: user, ttlSeconds: 3600, now: SystemClock().nowMillis(), issuer: nil, audience: nil)
    }

    func rssBytes() -> Int? { ProcessRSS.of(pid: server.pid) }

    func inbox(_ user: String) async throws -> [JSONObject] {
        var since: Int64 = 0
        var all: [JSONObject] = []
        let token = try await token(user)
        while true {
            var request = HTTPClientRequest(url: "http://127.0.0.1:\(server.publicPort)/v1/sync?since=\(since)&limit=1000")
            request.headers.add(name: "Authorization", value: "Bearer \(token)")
            let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
            var body = try await response.body.collect(upTo: 64 << 20)
            let json = try #require(try JSONParser.parse(body.readString(length: body.readableBytes) ?? "").objectValue)
            all += (json["messages"]?.arrayValue ?? []).compactMap(\.objectValue)
            since = json["next"]?.int64Value ?? since
            if json["more"] != true { return all }
        }
    }

    func cleanUp() {
        if server.isRunning { kill(server.pid, SIGKILL) }
        try? FileManager.default.removeItem(at: directory)
    }
}
