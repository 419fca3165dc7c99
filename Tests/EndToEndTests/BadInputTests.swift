import GatewayTesting
import Foundation
import GatewayCore
import NIOCore
import NIOPosix
import Testing

/// PROTOCOL.md section 3 errors and RELIABILITY.md "WebSocket and HTTP input" / "Tokens":
/// each bad input gets its documented answer and the gateway keeps serving everyone else.
@Suite("Bad input over real sockets")
struct BadInputTests {
    /// After each abuse, a healthy client still gets through.
    func assertStillServing(_ gateway: TestGateway) async throws {
        let (probe, _) = try await gateway.connect("probe")
        probe.send(["type": "ping", "ref": "alive"])
        let pong = try await probe.nextFrame()
        #expect(pong["type"]?.stringValue == "pong")
        #expect(pong["ref"]?.stringValue == "alive")
        probe.close()
    }

    @Test func malformedFramesGetBadFrameAndNothingIsStored() async throws {
        let gateway = try await TestGateway.start()
        let (first, _) = try await gateway.connect("alice")
        let (second, _) = try await gateway.connect("alice")
        let cases: [(String, String)] = [
            ("not json", "bad_frame"),
            ("[1,2,3]", "bad_frame"),
            ("{\"type\":\"launch\"}", "bad_frame"),
            ("{\"type\":7}", "bad_frame"),
            ("{\"type\":\"send\",\"to\":{\"user\":\"bob\"},\"client_msg_id\":\"x\"}", "bad_frame"),
            ("{\"type\":\"send\",\"to\":{\"user\":\"bad id!\"},\"body\":1,\"client_msg_id\":\"x\"}", "bad_frame"),
            ("{\"type\":\"send\",\"to\":{\"user\":\"bob\"},\"body\":1}", "bad_frame"),
            ("{\"type\":\"send\",\"to\":\"bob\",\"body\":1,\"client_msg_id\":\"x\"}", "bad_frame"),
            ("{\"type\":\"history\",\"with\":{\"user\":\"bob\"},\"limit\":100000}", "bad_frame"),
            (String(repeating: "[", count: 10000) + String(repeating: "]", count: 10000), "bad_frame"),
        ]
        // Fewer than 10 bad frames per connection, or it is closed with 4000 (tested below).
        for (index, (text, code)) in cases.enumerated() {
            let alice = index < 5 ? first : second
            alice.send(text)
            let reply = try await alice.nextFrame()
            #expect(reply["type"]?.stringValue == "error", "for \(text.prefix(40))")
            #expect(reply["code"]?.stringValue == code, "for \(text.prefix(40))")
        }
        let alice = try await gateway.connect("alice").0
        // A ref is echoed even on an unknown type.
        alice.send("{\"type\":\"launch\",\"ref\":\"r9\"}")
        #expect(try await alice.nextFrame()["ref"]?.stringValue == "r9")
        alice.send(["type": "sync", "since": 0])
        #expect(try await alice.nextFrame()["messages"]?.arrayValue?.isEmpty == true)
        try await assertStillServing(gateway)
        await gateway.stop()
    }

    @Test func repeatedBadFramesCloseWith4000() async throws {
        let gateway = try await TestGateway.start()
        let (alice, _) = try await gateway.connect("alice")
        for _ in 0..<10 { alice.send("garbage") }
        #expect(try await alice.closeCode() == 4000)
        try await assertStillServing(gateway)
        await gateway.stop()
    }

    @Test func oversizedMessagesCloseWith1009() async throws {
        let gateway = try await TestGateway.start(extra: "limits: { max_frame_bytes: 4096 }")
        let (alice, _) = try await gateway.connect("alice")
        alice.send(String(repeating: "x", count: 5000))
        #expect(try await alice.closeCode() == 1009)

        // 100 fragments of 1 KiB cross the 4 KiB limit: closed as soon as it is crossed.
        let (bob, _) = try await gateway.connect("bob")
        let chunk = ByteBuffer(string: String(repeating: "y", count: 1024))
        bob.raw.sendFrame(opcode: 0x1, payload: chunk, fin: false)
        for _ in 0..<99 { bob.raw.sendFrame(opcode: 0x0, payload: chunk, fin: false) }
        #expect(try await bob.closeCode() == 1009)

        // A header declaring 2^63 bytes.
        let (carol, _) = try await gateway.connect("carol")
        var header = ByteBuffer()
        header.writeBytes([0x81, 0xFF])
        header.writeInteger(UInt64(1) << 63)
        header.writeBytes([1, 2, 3, 4])
        try await carol.raw.writeRaw(header)
        #expect(try await carol.closeCode() == 1009)
        try await assertStillServing(gateway)
        await gateway.stop()
    }

    @Test(arguments: [
        ("unmasked frame", 0x1 as UInt8, true, false, 0 as UInt8, 1002 as UInt16),
        ("reserved bit", 0x1, true, true, 0x4, 1002),
        ("unknown opcode", 0x3, true, true, 0, 1002),
        ("stray continuation", 0x0, true, true, 0, 1002),
        ("fragmented ping", 0x9, false, true, 0, 1002),
    ])
    func protocolViolationsCloseAsRFC6455Says(name: String, opcode: UInt8, fin: Bool, masked: Bool, rsv: UInt8, expected: UInt16) async throws {
        let gateway = try await TestGateway.start()
        let (alice, _) = try await gateway.connect("alice")
        alice.raw.sendFrame(opcode: opcode, payload: ByteBuffer(string: "{\"type\":\"ping\"}"), fin: fin, masked: masked, rsv: rsv)
        #expect(try await alice.closeCode() == expected, "\(name)")
        try await assertStillServing(gateway)
        await gateway.stop()
    }

    @Test func invalidUTF8AndLongControlFrames() async throws {
        let gateway = try await TestGateway.start()
        let (alice, _) = try await gateway.connect("alice")
        var bad = ByteBuffer()
        bad.writeBytes([0x7B, 0xC3, 0x28, 0x7D])
        alice.raw.sendFrame(opcode: 0x1, payload: bad)
        #expect(try await alice.closeCode() == 1007)
        let (bob, _) = try await gateway.connect("bob")
        bob.raw.sendFrame(opcode: 0x9, payload: ByteBuffer(string: String(repeating: "p", count: 126)))
        #expect(try await bob.closeCode() == 1002)
        // A WebSocket ping is answered with a pong carrying the same data.
        let (carol, _) = try await gateway.connect("carol")
        carol.raw.sendFrame(opcode: 0x9, payload: ByteBuffer(string: "hb"))
        #expect(try await carol.next() == .pong(Array("hb".utf8)))
        await gateway.stop()
    }

    @Test func handshakeRefusals() async throws {
        let gateway = try await TestGateway.start(extra: "listen: { public: { host: 127.0.0.1, port: 0, allowed_origins: [\"https://app.example\"] }, admin: { host: 127.0.0.1, port: 0, token: admin-test-token } }")
        let token = try await gateway.token("alice")
        // Bad token before the upgrade: 401 with the error body.
        let (_, status, body) = try await WebSocketStream.connect(port: gateway.port, headers: [("Authorization", "Bearer not.a.token")])
        #expect(status == 401)
        #expect(body.contains("unauthorized"))
        // alg none.
        let none = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJtYWxsb3J5IiwiZXhwIjo0MTAyNDQ0ODAwfQ."
        #expect(try await WebSocketStream.connect(port: gateway.port, headers: [("Authorization", "Bearer \(none)")]).status == 401)
        // Origin not allowed: 403; allowed origin: 101.
        let refused = try await WebSocketStream.connect(port: gateway.port, headers: [("Origin", "https://evil.example"), ("Authorization", "Bearer \(token)")])
        #expect(refused.status == 403)
        let allowed = try await WebSocketStream.connect(port: gateway.port, headers: [("Origin", "https://app.example"), ("Authorization", "Bearer \(token)")])
        #expect(allowed.status == 101)
        // The access_token query works for clients that cannot set headers.
        let viaQuery = try await WebSocketStream.connect(port: gateway.port, path: "/v1/ws?access_token=\(token)")
        #expect(viaQuery.status == 101)
        #expect(try await viaQuery.stream.nextFrame()["type"]?.stringValue == "hello")
        await gateway.stop()
    }

    @Test func malformedHandshakesGet400Or426() async throws {
        let gateway = try await TestGateway.start()
        let noKey = try await RawHTTP.send(port: gateway.port, "GET /v1/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n")
        #expect(noKey.hasPrefix("HTTP/1.1 400"), "\(noKey.prefix(60))")
        let badVersion = try await RawHTTP.send(port: gateway.port, "GET /v1/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n")
        #expect(badVersion.hasPrefix("HTTP/1.1 426"), "\(badVersion.prefix(60))")
        #expect(badVersion.lowercased().contains("sec-websocket-version: 13"))
        let badKey = try await RawHTTP.send(port: gateway.port, "GET /v1/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: short\r\nSec-WebSocket-Version: 13\r\n\r\n")
        #expect(badKey.hasPrefix("HTTP/1.1 400"), "\(badKey.prefix(60))")
        let post = try await RawHTTP.send(port: gateway.port, "POST /v1/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nContent-Length: 0\r\n\r\n")
        #expect(!post.hasPrefix("HTTP/1.1 101"), "\(post.prefix(60))")
        let plain = try await RawHTTP.send(port: gateway.port, "GET /v1/ws HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(plain.hasPrefix("HTTP/1.1 400"), "\(plain.prefix(60))")
        let huge = try await RawHTTP.send(port: gateway.port, "GET /v1/ws HTTP/1.1\r\nHost: x\r\nX-Big: \(String(repeating: "a", count: 70000))\r\n\r\n")
        #expect(huge.hasPrefix("HTTP/1.1 431"), "\(huge.prefix(60))")
        // Request smuggling: both Content-Length and Transfer-Encoding, or two lengths: 400 and
        // close; the pipelined second request is never served.
        let smuggled = try await RawHTTP.send(
            port: gateway.port,
            "POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /v1/discover HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(smuggled.hasPrefix("HTTP/1.1 400"), "\(smuggled.prefix(60))")
        #expect(!smuggled.contains("ws_url"))
        let twoLengths = try await RawHTTP.send(port: gateway.port, "POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\nabcdefg")
        #expect(twoLengths.hasPrefix("HTTP/1.1 400"), "\(twoLengths.prefix(60))")
        try await assertStillServing(gateway)
        await gateway.stop()
    }

    @Test func authFrameFlow() async throws {
        // No auth within auth_timeout_ms: close 4001. (A gateway of its own with a short
        // timeout; the flows below get a minute, so a loaded machine cannot time them out.)
        let hasty = try await TestGateway.start(extra: "limits: { auth_timeout_ms: 500 }")
        let (idle, _, _) = try await WebSocketStream.connect(port: hasty.port)
        #expect(try await idle.closeCode(timeout: 10) == 4001)
        await hasty.stop()

        let gateway = try await TestGateway.start(extra: "limits: { auth_timeout_ms: 60000 }")
        // A frame before auth: unauthorized and close 4001.
        let (early, _, _) = try await WebSocketStream.connect(port: gateway.port)
        early.send(["type": "ping", "ref": "p"])
        let error = try await early.nextFrame()
        #expect(error["code"]?.stringValue == "unauthorized")
        #expect(try await early.closeCode() == 4001)
        // A bad token in the auth frame.
        let (bad, _, _) = try await WebSocketStream.connect(port: gateway.port)
        bad.send(["type": "auth", "token": "x.y.z", "ref": "a"])
        let refused = try await bad.nextFrame()
        #expect(refused["code"]?.stringValue == "unauthorized")
        #expect(refused["ref"]?.stringValue == "a")
        #expect(try await bad.closeCode() == 4001)
        // A good auth frame: hello with the ref, then the session works.
        let token = try await gateway.token("alice")
        let (good, _, _) = try await WebSocketStream.connect(port: gateway.port)
        good.send(["type": "auth", "token": .string(token), "device": "tablet", "ref": "a1"])
        let hello = try await good.nextFrame()
        #expect(hello["type"]?.stringValue == "hello")
        #expect(hello["ref"]?.stringValue == "a1")
        #expect(hello["device"]?.stringValue == "tablet")
        good.send(sendFrame(to: .user("bob"), body: 1, id: "k"))
        #expect(try await good.nextFrame()["type"]?.stringValue == "ack")
        await gateway.stop()
    }

    @Test func nobodyActsAsSomeoneElse() async throws {
        let gateway = try await TestGateway.start()
        let (mallory, _) = try await gateway.connect("mallory")
        var frame = try #require(sendFrame(to: .user("bob"), body: "i am alice", id: "m1").objectValue)
        frame["from"] = "alice"
        mallory.send(.object(frame))
        #expect(try await mallory.nextFrame()["code"]?.stringValue == "forbidden")
        // Posting to a group one is not in.
        mallory.send(sendFrame(to: .group("secret"), body: "hi", id: "m2"))
        #expect(try await mallory.nextFrame()["code"]?.stringValue == "forbidden")
        mallory.send(["type": "history", "with": ["group": "secret"]])
        #expect(try await mallory.nextFrame()["code"]?.stringValue == "forbidden")
        // Another user's long-poll session is not found.
        let bob = try await LongPollClient.open(gateway, user: "bob")
        let stolen = try await gateway.request(.GET, "/v1/lp/poll?session=\(bob.session)&timeout_ms=0", token: try await gateway.token("mallory"))
        #expect(stolen.status == 404)
        await gateway.stop()
    }

    @Test func expiredAndExpiringTokens() async throws {
        let clock = TestClock()
        let gateway = try await TestGateway.start(extra: "limits: { auth_timeout_ms: 300 }", clock: clock)
        // Expired beyond the 30 s leeway: 401 before the upgrade.
        let expired = try await gateway.token("alice", ttl: 60)
        clock.advance(by: 120_000)
        #expect(try await WebSocketStream.connect(port: gateway.port, headers: [("Authorization", "Bearer \(expired)")]).status == 401)
        // A token that expires while connected (the clock stands on a whole second: exactly
        // 1 s from now): token_expired at its expiry, then close 4001 after the 300 ms grace.
        let expiry = clock.nowMillis() + 1000
        let short = try await gateway.token("alice", ttl: 1)
        let (stream, status, _) = try await WebSocketStream.connect(port: gateway.port, headers: [("Authorization", "Bearer \(short)")])
        #expect(status == 101)
        _ = try await stream.nextFrame()  // hello
        // The gateway waits for exactly the token's expiry.
        try await clock.waitForTimer(at: expiry)
        clock.advance(by: 1000)
        let notice = try await stream.nextFrame(timeout: 10)
        #expect(notice["code"]?.stringValue == "token_expired")
        try await clock.waitForTimer(at: expiry + 300)
        clock.advance(by: 299)
        stream.send(["type": "ping", "ref": "still"])
        #expect(try await stream.nextFrame()["ref"]?.stringValue == "still")
        clock.advance(by: 1)
        #expect(try await stream.closeCode() == 4001)
        await gateway.stop()
    }

    @Test func longPollHeldToItsTimeoutAndCORS() async throws {
        // The poll's timeout is a timer on the gateway's clock: the test steps through it.
        let clock = TestClock()
        let gateway = try await TestGateway.start(
            extra: "listen: { public: { host: 127.0.0.1, port: 0, allowed_origins: [\"https://app.example\"] }, admin: { host: 127.0.0.1, port: 0, token: admin-test-token } }",
            clock: clock)
        let alice = try await LongPollClient.open(gateway, user: "alice")
        let timeoutAt = clock.nowMillis() + 300
        let held = Task { try await gateway.request(.GET, "/v1/lp/poll?session=\(alice.session)&timeout_ms=300", token: alice.token) }
        try await clock.waitForTimer(at: timeoutAt)
        clock.advance(by: 299)
        #expect(clock.pendingTimers(at: timeoutAt) == 1)
        clock.advance(by: 1)
        let answer = try await held.value
        #expect(answer.status == 200)
        #expect(answer.body == "{\"frames\":[]}")
        #expect(answer.headers["cache-control"] == "no-store")
        let bad = try await gateway.request(.GET, "/v1/lp/poll?session=\(alice.session)&timeout_ms=99999", token: alice.token)
        #expect(bad.status == 400)
        // `ack` (the highest seq the client holds) must be a seq: bad_frame, the session stays.
        for ack in ["-1", "x", "99999999999999999999"] {
            let refused = try await gateway.request(.GET, "/v1/lp/poll?session=\(alice.session)&timeout_ms=0&ack=\(ack)", token: alice.token)
            #expect(refused.status == 400, "ack=\(ack)")
            #expect(refused.body.contains("bad_frame"), "ack=\(ack): \(refused.body)")
        }
        #expect(try await gateway.request(.GET, "/v1/lp/poll?session=\(alice.session)&timeout_ms=0&ack=0", token: alice.token).status == 200)
        // Preflight from an unknown origin: no Access-Control-Allow-Origin, never '*'.
        let unknown = try await gateway.request(.OPTIONS, "/v1/lp/send", headers: [("Origin", "https://evil.example"), ("Access-Control-Request-Method", "POST")])
        #expect(unknown.headers["access-control-allow-origin"] == nil)
        let known = try await gateway.request(.OPTIONS, "/v1/lp/send", headers: [("Origin", "https://app.example"), ("Access-Control-Request-Method", "POST")])
        #expect(known.headers["access-control-allow-origin"] == "https://app.example")
        await gateway.stop()
    }
}

/// One raw HTTP/1.1 exchange over a fresh TCP connection: the server's response (its head, and
/// its body as far as `Content-Length` or the last chunk says), what it sent before it closed
/// the connection, or what came before `timeout` passed.
enum RawHTTP {
    static func send(port: Int, _ request: String, timeout: Double = 15) async throws -> String {
        let collector = ResponseCollector()
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(collector) }
            }
            .connect(host: "127.0.0.1", port: port).get()
        try await channel.writeAndFlush(ByteBuffer(string: request)).get()
        // Wait for the whole response (the server may keep the connection open): the head can
        // arrive in one read and the body in the next, and tests look at both.
        _ = await collector.seen.wait(timeout: .milliseconds(Int(timeout * 1000))) { isComplete($0.text) || $0.closed }
        try? await channel.close().get()
        return collector.text
    }

    /// Whether `text` holds a whole response: its head, then as many body bytes as its
    /// `Content-Length` says, or a chunked body through its last chunk (a head with neither,
    /// a 101 or a 1xx, is whole at once).
    static func isComplete(_ text: String) -> Bool {
        guard let end = text.range(of: "\r\n\r\n") else { return false }
        let head = text[..<end.lowerBound].lowercased()
        let body = text[end.upperBound...]
        for line in head.split(separator: "\r\n") {
            if line.hasPrefix("content-length:"), let length = Int(line.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)) {
                return body.utf8.count >= length
            }
            if line.hasPrefix("transfer-encoding:"), line.contains("chunked") {
                return body.hasPrefix("0\r\n\r\n") || body.contains("\r\n0\r\n\r\n")
            }
        }
        return true
    }

    /// Everything a server sends on a fresh socket until it closes it, the client sending
    /// nothing (a socket answered at accept: `ConnectionAdmission`).
    static func answerBeforeAnyRequest(port: Int) async throws -> String {
        let collector = ResponseCollector()
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(collector) }
            }
            .connect(host: "127.0.0.1", port: port).get()
        try await channel.closeFuture.get()
        return collector.text
    }

    final class ResponseCollector: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        /// What arrived, and whether the server closed; tests wait on it.
        let seen = Observed((text: "", closed: false))

        var text: String { seen.value.text }
        var closed: Bool { seen.value.closed }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            var bytes = unwrapInboundIn(data)
            let chunk = bytes.readString(length: bytes.readableBytes) ?? ""
            seen.update { $0.text += chunk }
        }

        func channelInactive(context: ChannelHandlerContext) {
            seen.update { $0.closed = true }
        }
    }
}
