import GatewayTesting
import Foundation
import GatewayCore
import Testing

/// Issue 3: presence (online, grace, heartbeat timeout, visibility), typing and read receipts.
@Suite("Presence, typing and read receipts")
struct PresenceTests {
    static let presenceYAML = "presence: { heartbeat_ms: 50, offline_after_ms: 5000, grace_ms: 300, visibility: shared, fanout_max_group: 3 }"
    /// Short enough that a silent client is closed quickly; the watching client keeps a heartbeat.
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
        let gateway = try await TestGateway.start(extra: Self.presenceYAML)
        try await converse(gateway)
        let (bob, _) = try await gateway.connect("bob")
        let heartbeat = bob.keepAlive()
        defer { heartbeat.cancel() }
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
        // alice drops and comes back within the grace period: no event at all.
        alice.raw.disconnect()
        let (again, _) = try await gateway.connect("alice")
        again.send(["type": "ping", "ref": "x"])
        _ = try await again.nextFrame()
        // alice closes for good: offline after the grace period.
        again.close()
        let offline = try await bob.nextFrame(ofType: "presence", timeout: 5)
        #expect(presence(offline) == ("alice", "offline"))
        #expect((offline["users"]?.arrayValue?.first?["last_active_at"]?.int64Value ?? 0) > 0)
        await gateway.stop()
    }

    @Test func missedHeartbeatsCloseTheSessionAndTheUserGoesOffline() async throws {
        let gateway = try await TestGateway.start(extra: Self.heartbeatYAML)
        try await converse(gateway)
        let (bob, _) = try await gateway.connect("bob")
        let heartbeat = bob.keepAlive()
        defer { heartbeat.cancel() }
        let (alice, _) = try await gateway.connect("alice")
        bob.send(["type": "presence.subscribe", "users": ["alice"]])
        #expect(presence(try await bob.nextFrame(ofType: "presence")) == ("alice", "online"))
        // alice goes silent: her socket stays open but sends nothing; bob keeps his heartbeat.
        #expect(try await alice.closeCode(timeout: 5) == 1000)
        #expect(presence(try await bob.nextFrame(ofType: "presence", timeout: 5)) == ("alice", "offline"))
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
        let gateway = try await TestGateway.start()
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
    /// Sends a `ping` every 50 ms, as a client's heartbeat, until cancelled.
    func keepAlive() -> Task<Void, Never> {
        Task {
            while !Task.isCancelled {
                self.send(["type": "ping"])
                try? await Task.sleep(for: .milliseconds(50))
            }
        }
    }

    /// The next frame of `type`, skipping others (pongs of a heartbeat, say).
    func nextFrame(ofType type: String, timeout: Double = 10) async throws -> JSONObject {
        while true {
            let frame = try await nextFrame(timeout: timeout)
            if frame["type"]?.stringValue == type { return frame }
        }
    }
}
