import GatewayTesting
import Foundation
import GatewayCore
import Testing

/// Issue 3: presence (online, grace, heartbeat timeout, visibility), typing and read receipts.
@Suite("Presence, typing and read receipts", .timeLimit(.minutes(2)))
struct PresenceTests {
    static let presenceYAML = "presence: { heartbeat_ms: 50, offline_after_ms: 5000, grace_ms: 300, visibility: shared, fanout_max_group: 3 }"
    /// A silent client is closed after 3 s of the test's clock.
    static let heartbeatYAML = "presence: { heartbeat_ms: 50, offline_after_ms: 3000, grace_ms: 300, visibility: shared, fanout_max_group: 3 }"

    /// alice and bob share a 1:1 conversation, so each may see the other (sent over REST, so
    /// alice never had a live session).
    func converse(_ gateway: TestGateway) async throws {
        let posted = try await gateway.request(
            .POST, "/v1/messages", token: try await gateway.token("alice"), body: sendFrame(to: .user("bob"), body: "hi", id: "intro").jsonText)
        #expect(posted.status == 200)
    }

    func presence(_ frame: JSONObject) -> (user: String?, status: String?) {
        let entry = frame["users"]?.arrayValue?.first
        return (entry?["user"]?.stringValue, entry?["status"]?.stringValue)
    }

    @Test func onlineOfflineAndGrace() async throws {
        // Grace and heartbeats run on the test clock: it moves only by the steps below, far
        // less than offline_after_ms, so bob needs no heartbeat.
        let clock = TestClock()
        let gateway = try await TestGateway.start(extra: Self.presenceYAML, clock: clock)
        try await converse(gateway)
        let (bob, _) = try await gateway.connect("bob")
        bob.send(["type": "presence.subscribe", "users": ["alice", "carol"], "ref": "p"])
        let reply = try await bob.nextFrame(ofType: "presence")
        #expect(reply["type"]?.stringValue == "presence")
        #expect(reply["ref"]?.stringValue == "p")
        let users = reply["users"]?.arrayValue ?? []
        // carol shares nothing with bob: left out.
        #expect(users.compactMap { $0["user"]?.stringValue } == ["alice"])
        #expect(users.first?["status"]?.stringValue == "offline")
        #expect(users.first?["last_active_at"]?.int64Value == 0)

        // alice connects: an online event.
        let (alice, _) = try await gateway.connect("alice")
        let online = try await bob.nextFrame(ofType: "presence")
        #expect(presence(online) == ("alice", "online"))
        // alice drops: the gateway waits out the grace (300 ms of clock) before saying so...
        alice.raw.disconnect()
        let firstGraceEnds = clock.nowMillis() + 300
        try await clock.waitForTimer(at: firstGraceEnds)
        clock.advance(by: 299)
        // ...and she is back within it: the wait is called off, and bob hears nothing, neither
        // when she dropped nor when the grace would have ended.
        let (again, _) = try await gateway.connect("alice")
        #expect(clock.pendingTimers(at: firstGraceEnds) == 0)
        clock.advance(by: 1)
        bob.send(["type": "ping", "ref": "b1"])
        #expect(try await bob.nextFrame()["ref"]?.stringValue == "b1", "bob heard of alice's drop")
        // alice closes for good: nothing during the grace, offline at its end.
        again.close()
        let closedAt = clock.nowMillis()
        try await clock.waitForTimer(at: closedAt + 300)
        clock.advance(by: 299)
        bob.send(["type": "ping", "ref": "b2"])
        #expect(try await bob.nextFrame()["ref"]?.stringValue == "b2", "offline before the grace ended")
        clock.advance(by: 1)
        let offline = try await bob.nextFrame(ofType: "presence", timeout: 15)
        #expect(presence(offline) == ("alice", "offline"))
        #expect(offline["users"]?.arrayValue?.first?["last_active_at"]?.int64Value == closedAt)
        await gateway.stop()
    }

    @Test func missedHeartbeatsCloseTheSessionAndTheUserGoesOffline() async throws {
        // offline_after_ms 3000: the sweep runs every max(100, 750) / 2 = 375 ms of clock.
        let clock = TestClock()
        let start = clock.nowMillis()
        let gateway = try await TestGateway.start(extra: Self.heartbeatYAML, clock: clock)
        try await clock.waitForTimer(at: start + 375)
        try await converse(gateway)
        let (bob, _) = try await gateway.connect("bob")
        let (alice, _) = try await gateway.connect("alice")
        bob.send(["type": "presence.subscribe", "users": ["alice"]])
        #expect(presence(try await bob.nextFrame(ofType: "presence")) == ("alice", "online"))
        // alice goes silent: her socket stays open but sends nothing; bob pings 2 s in.
        clock.advance(by: 2000)
        bob.send(["type": "ping", "ref": "hb"])
        #expect(try await bob.nextFrame()["ref"]?.stringValue == "hb")
        // 3.5 s: alice is past offline_after_ms, bob is not.
        clock.advance(by: 1500)
        #expect(try await alice.closeCode(timeout: 15) == 1000)
        // Offline once the grace (300 ms) after her close has passed.
        try await clock.waitForTimer(at: start + 3500 + 300)
        clock.advance(by: 300)
        #expect(presence(try await bob.nextFrame(ofType: "presence", timeout: 15)) == ("alice", "offline"))
        await gateway.stop()
    }

    @Test func noEventsForUsersOneMayNotSee() async throws {
        let gateway = try await TestGateway.start(extra: Self.presenceYAML)
        let (carol, _) = try await gateway.connect("carol")
        carol.send(["type": "presence.subscribe", "users": ["dave"]])
        let reply = try await carol.nextFrame()
        #expect(reply["users"]?.arrayValue?.isEmpty == true)
        let (dave, _) = try await gateway.connect("dave")
        dave.send(["type": "ping", "ref": "d"])
        _ = try await dave.nextFrame()
        carol.send(["type": "ping", "ref": "c"])
        // The next frame carol sees is her pong, not a presence event about dave.
        #expect(try await carol.nextFrame()["type"]?.stringValue == "pong")
        // The REST query follows the same rule.
        let answer = try await gateway.request(.GET, "/v1/presence?users=dave", token: try await gateway.token("carol"))
        #expect(answer.status == 200)
        #expect(answer.json?["users"]?.arrayValue?.isEmpty == true)
        await gateway.stop()
    }

    @Test func typingIsRelayedAndThrottled() async throws {
        // The throttle's second is measured on the gateway's clock: a test clock that does not
        // move keeps both frames within it however slowly a loaded machine handles them.
        let gateway = try await TestGateway.start(clock: TestClock())
        let (alice, _) = try await gateway.connect("alice")
        let (bob, _) = try await gateway.connect("bob")
        alice.send(["type": "typing", "to": ["user": "bob"]])
        alice.send(["type": "typing", "to": ["user": "bob"]])  // within a second: dropped
        alice.send(["type": "ping", "ref": "after"])
        #expect(try await alice.nextFrame()["ref"]?.stringValue == "after")
        let typing = try await bob.nextFrame()
        #expect(typing["type"]?.stringValue == "typing")
        #expect(typing["from"]?.stringValue == "alice")
        #expect(typing["to"] == ["user": "bob"])
        bob.send(["type": "ping", "ref": "b"])
        #expect(try await bob.nextFrame()["type"]?.stringValue == "pong")
        // Typing is never stored.
        bob.send(["type": "sync", "since": 0])
        #expect(try await bob.nextFrame()["messages"]?.arrayValue?.isEmpty == true)
        await gateway.stop()
    }

    @Test func readReceiptsAreStoredAndSent() async throws {
        let gateway = try await TestGateway.start()
        let (alice, _) = try await gateway.connect("alice")
        let (bob, _) = try await gateway.connect("bob")
        alice.send(sendFrame(to: .user("bob"), body: "read me", id: "r1"))
        let ack = try await alice.nextFrame()
        let id = try #require(ack["id"]?.stringValue)
        _ = try await bob.nextFrame()  // the message
        bob.send(["type": "read", "with": ["user": "alice"], "up_to": .string(id)])
        let receipt = try await alice.nextFrame()
        #expect(receipt["type"]?.stringValue == "receipt")
        #expect(receipt["from"]?.stringValue == "bob")
        #expect(receipt["with"] == ["user": "bob"])
        #expect(receipt["up_to"]?.stringValue == id)
        // A position never moves back: reading an older id sends nothing.
        bob.send(["type": "read", "with": ["user": "alice"], "up_to": "1"])
        alice.send(["type": "history", "with": ["user": "bob"]])
        let history = try await alice.nextFrame()
        #expect(history["type"]?.stringValue == "history")
        #expect(history["reads"]?["bob"]?.stringValue == id)
        bob.send(["type": "read", "with": ["user": "alice"]])
        #expect(try await bob.nextFrame()["code"]?.stringValue == "bad_frame")
        await gateway.stop()
    }
}

extension WebSocketStream {
    /// The next frame of `type`, skipping others (pongs of a heartbeat, say).
    func nextFrame(ofType type: String, timeout: Double = 10) async throws -> JSONObject {
        while true {
            let frame = try await nextFrame(timeout: timeout)
            if frame["type"]?.stringValue == type { return frame }
        }
    }
}
