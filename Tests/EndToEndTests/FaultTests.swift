import GatewayTesting
import Foundation
import GatewayCore
import NIOCore
import Testing

@testable import chatgate

/// RELIABILITY.md faults: store errors, a slow store, slow consumers, shutdown.
@Suite("Faults")
struct FaultTests {
    @Test func aFailingStoreAnswersUnavailableStoresNothingAndRecovers() async throws {
        let gateway = try await TestGateway.start()
        let (alice, _) = try await gateway.connect("alice")
        gateway.bootstrap.faults.failNextCommits(1, with: .unavailable("disk full"))
        alice.send(sendFrame(to: .user("bob"), body: "lost?", id: "f1", ref: "r"))
        let error = try await alice.nextFrame()
        #expect(error["type"]?.stringValue == "error")
        #expect(error["code"]?.stringValue == "unavailable")
        #expect(error["ref"]?.stringValue == "r")
        #expect(error["retry_after_ms"] != nil)
        // failed_but_present must be 0: nothing of it is stored.
        alice.send(["type": "sync", "since": 0])
        #expect(try await alice.nextFrame()["messages"]?.arrayValue?.isEmpty == true)
        // The store is back: the resend is stored once, as a new message.
        alice.send(sendFrame(to: .user("bob"), body: "again", id: "f1"))
        let ack = try await alice.nextFrame()
        #expect(ack["type"]?.stringValue == "ack")
        #expect(ack["duplicate"] == nil)
        #expect(ack["seq"]?.int64Value == 1)
        await gateway.stop()
    }

    /// A `hello` must carry the true `inbox_seq`: when the store cannot tell it, the session
    /// is refused (`unavailable`, close 1001) rather than told 0, which a client would read as
    /// its inbox going back. Long-poll gets 503 and no session.
    @Test func noHelloWithoutTheInboxHead() async throws {
        let gateway = try await TestGateway.start()
        let (alice, _) = try await gateway.connect("alice")
        alice.send(sendFrame(to: .user("bob"), body: "kept", id: "h1"))
        #expect(try await alice.nextFrame()["type"]?.stringValue == "ack")
        try await gateway.gateway.stores.messages.close()

        let token = try await gateway.token("alice")
        let (stream, status, _) = try await WebSocketStream.connect(port: gateway.port, headers: [("Authorization", "Bearer \(token)")])
        #expect(status == 101)
        let refused = try await stream.nextFrame()
        #expect(refused["type"]?.stringValue == "error")
        #expect(refused["code"]?.stringValue == "unavailable")
        #expect(try await stream.closeCode() == 1001)
        #expect(gateway.gateway.hub.sessions(of: "alice").count == 1)

        let poll = try await gateway.request(.POST, "/v1/lp/open", token: token, body: "{}")
        #expect(poll.status == 503, "\(poll.body)")
        #expect(gateway.gateway.hub.sessions(of: "alice").count == 1)
        await gateway.stop()
    }

    @Test func aSlowStoreFillsTheCommitQueueAndSendsAreRefusedNotLost() async throws {
        let gateway = try await TestGateway.start(extra: "limits: { max_pending_commits: 4 }")
        // 1 s a commit: the 12 sends arrive within one commit however slowly a loaded machine
        // reads them (with 300 ms, four sends read more than 75 ms apart all fitted the queue).
        gateway.bootstrap.faults.delayCommits(byMilliseconds: 1000)
        var clients: [WebSocketStream] = []
        for n in 0..<12 { clients.append(try await gateway.connect("u\(n)").0) }
        for (n, client) in clients.enumerated() { client.send(sendFrame(to: .user("sink"), body: .int(n), id: "s\(n)")) }
        var acked = 0
        var refused = 0
        for client in clients {
            let reply = try await client.nextFrame(timeout: 20)
            if reply["type"]?.stringValue == "ack" { acked += 1 }
            if reply["code"]?.stringValue == "unavailable" { refused += 1 }
        }
        #expect(acked + refused == 12)
        #expect(refused > 0)
        gateway.bootstrap.faults.delayCommits(byMilliseconds: 0)
        let sink = try await gateway.request(.GET, "/v1/sync?since=0", token: try await gateway.token("sink"))
        #expect(sink.json?["messages"]?.arrayValue?.count == acked)
        await gateway.stop()
    }

    @Test func aClientThatNeverReadsIsClosedAsSlowConsumerAndLosesNothing() async throws {
        let gateway = try await TestGateway.start(extra: "limits: { outbound_queue: 32 }")
        let token = try await gateway.token("slow")
        let (reader, status, _) = try await WebSocketStream.connect(
            port: gateway.port, headers: [("Authorization", "Bearer \(token)")], receiveBufferBytes: 4096)
        #expect(status == 101)
        _ = try await reader.nextFrame()  // hello
        try await reader.raw.channel.setOption(ChannelOptions.autoRead, value: false).get()
        let (sender, _) = try await gateway.connect("fast")
        // 6 MB: more than the socket buffers hold for a reader that never reads.
        let body = JSONValue.string(String(repeating: "x", count: 4000))
        let total = 1500
        for n in 0..<total {
            sender.send(sendFrame(to: .user("slow"), body: body, id: "m\(n)"))
            if n % 50 == 49 {
                // Keep a bounded window: wait for the 50th ack before the next batch.
                _ = try await sender.frames(until: "ack", timeout: 20)
            }
        }
        var acks = 0
        while acks < total {
            let frame = try await sender.nextFrame(timeout: 20)
            if frame["type"]?.stringValue == "ack" { acks = Int(frame["seq"]?.int64Value ?? 0) }
        }
        // The slow reader was cut off: resume reading and find the close (4008) or the drop.
        try await reader.raw.channel.setOption(ChannelOptions.autoRead, value: true).get()
        reader.raw.channel.read()
        var code: UInt16?
        while true {
            let event = try await reader.next(timeout: 20)
            if case .close(let c, _) = event { code = c; break }
            if case .disconnected = event { break }
        }
        #expect(code == nil || code == 4008)
        #expect(gateway.gateway.stats.slowConsumers.load(ordering: .relaxed) > 0)
        // After reconnecting, sync has every message.
        let (again, hello) = try await gateway.connect("slow")
        #expect(hello["inbox_seq"]?.int64Value == Int64(total))
        var since: Int64 = 0
        var seen = 0
        while true {
            again.send(["type": "sync", "since": .int(since), "limit": 1000])
            let page = try await again.nextFrame(ofType: "sync")
            seen += page["messages"]?.arrayValue?.count ?? 0
            since = page["next"]?.int64Value ?? since
            if page["more"] != true { break }
        }
        #expect(seen == total)
        // Other clients were unaffected throughout.
        sender.send(["type": "ping", "ref": "ok"])
        #expect(try await sender.nextFrame(ofType: "pong")["ref"]?.stringValue == "ok")
        // The connection closed as a slow consumer left nothing behind (issue 9), nor do the others.
        for stream in [sender, again] {
            stream.raw.close(code: 1000)
            _ = try? await stream.closeCode()
        }
        LifecycleTests.expectNothingLeft(await LifecycleTests.settled(gateway), "after a slow consumer")
        await gateway.stop()
    }

    @Test func shutdownClosesSessionsWith1001AndKeepsAckedMessages() async throws {
        let gateway = try await TestGateway.start()
        let (alice, _) = try await gateway.connect("alice")
        let lp = try await LongPollClient.open(gateway, user: "bob")
        alice.send(sendFrame(to: .user("bob"), body: "before shutdown", id: "z1"))
        #expect(try await alice.nextFrame()["type"]?.stringValue == "ack")
        _ = try await lp.poll(until: "message")
        let directory = gateway.directory
        await gateway.stop(removeFiles: false)
        #expect(try await alice.closeCode() == 1001)
        // A new gateway on the same file has the message.
        let restarted = try await TestGateway.start(directory: directory)
        let sync = try await restarted.request(.GET, "/v1/sync?since=0", token: try await restarted.token("bob"))
        #expect(sync.json?["messages"]?.arrayValue?.first?["body"] == "before shutdown")
        await restarted.stop()
    }

    @Test func echoEndpointOnlyWhenEnabled() async throws {
        let off = try await TestGateway.start()
        #expect(try await WebSocketStream.connect(port: off.port, path: "/v1/echo").status == 404)
        await off.stop()
        let on = try await TestGateway.start(extra: "debug: { echo_endpoint: true }")
        let (echo, status, _) = try await WebSocketStream.connect(port: on.port, path: "/v1/echo")
        #expect(status == 101)
        echo.send("hello echo")
        #expect(try await echo.nextText() == "hello echo")
        echo.raw.sendFrame(opcode: 0x2, payload: ByteBuffer(bytes: [1, 2, 3]))
        #expect(try await echo.next() == .binary([1, 2, 3]))
        await on.stop()
    }
}
