import GatewayTesting
import Foundation
import GatewayCore
import Testing

@Suite("1:1 chat over WebSocket and long-poll")
struct ChatTests {
    @Test(arguments: StoreBackend.allCases) func websocketAndLongPollExchangeMessagesBothWays(backend: StoreBackend) async throws {
        let gateway = try await TestGateway.start(backend: backend)
        let (alice, aliceHello) = try await gateway.connect("alice")
        #expect(aliceHello["user"]?.stringValue == "alice")
        #expect(aliceHello["node"]?.stringValue == "test-node")
        #expect(aliceHello["inbox_seq"]?.int64Value == 0)
        let bob = try await LongPollClient.open(gateway, user: "bob", device: "phone")
        #expect(bob.hello["device"]?.stringValue == "phone")

        // alice → bob
        alice.send(sendFrame(to: .user("bob"), body: ["text": "hi bob"], id: "a1", ref: "r1"))
        let ack = try await alice.nextFrame()
        #expect(ack["type"]?.stringValue == "ack")
        #expect(ack["ref"]?.stringValue == "r1")
        #expect(ack["seq"]?.int64Value == 1)
        #expect(ack["client_msg_id"]?.stringValue == "a1")
        let id = try #require(ack["id"]?.stringValue)
        let received = try await bob.poll(until: "message")
        let message = try #require(received.first { $0["type"]?.stringValue == "message" })
        #expect(message["id"]?.stringValue == id)
        #expect(message["from"]?.stringValue == "alice")
        #expect(message["seq"]?.int64Value == 1)
        #expect(message["body"] == ["text": "hi bob"])
        #expect(message["to"] == ["user": "bob"])

        // bob → alice
        let replies = try await bob.send([sendFrame(to: .user("alice"), body: "hello alice", id: "b1", ref: "r2")])
        let bobAck = try #require(replies.first)
        #expect(bobAck["type"]?.stringValue == "ack")
        #expect(bobAck["seq"]?.int64Value == 2)
        let toAlice = try await alice.nextFrame()
        #expect(toAlice["type"]?.stringValue == "message")
        #expect(toAlice["id"] == bobAck["id"])
        #expect(toAlice["seq"]?.int64Value == 2)
        #expect(toAlice["body"] == "hello alice")

        // History: newest first, both directions in one conversation.
        alice.send(["type": "history", "with": ["user": "bob"], "ref": "h"])
        let history = try await alice.nextFrame()
        let ids = history["messages"]?.arrayValue?.compactMap { $0["id"]?.stringValue }
        #expect(ids == [bobAck["id"]?.stringValue, id].compactMap { $0 })
        #expect(history["more"] == false)
        alice.close()
        await gateway.stop()
    }

    @Test(arguments: StoreBackend.allCases) func reconnectingDeviceSyncsExactlyTheMissingMessagesAndResendsAreIdempotent(backend: StoreBackend) async throws {
        let gateway = try await TestGateway.start(backend: backend)
        let (alice, _) = try await gateway.connect("alice")
        var ids: [String] = []
        for n in 1...5 {
            alice.send(sendFrame(to: .user("bob"), body: .string("m\(n)"), id: "c\(n)"))
            ids.append(try #require(try await alice.nextFrame()["id"]?.stringValue))
        }
        // bob's device has seen up to seq 2; sync since 2 returns 3, 4, 5 in order.
        let (bob, bobHello) = try await gateway.connect("bob")
        #expect(bobHello["inbox_seq"]?.int64Value == 5)
        bob.send(["type": "sync", "since": 2, "ref": "s"])
        let sync = try await bob.nextFrame()
        #expect(sync["type"]?.stringValue == "sync")
        #expect(sync["ref"]?.stringValue == "s")
        let messages = try #require(sync["messages"]?.arrayValue)
        #expect(messages.map { $0["seq"]?.int64Value } == [3, 4, 5])
        #expect(messages.map { $0["id"]?.stringValue } == Array(ids[2...]))
        #expect(sync["next"]?.int64Value == 5)
        #expect(sync["more"] == false)

        // Paging with limit.
        bob.send(["type": "sync", "since": 0, "limit": 2])
        let page = try await bob.nextFrame()
        #expect(page["messages"]?.arrayValue?.count == 2)
        #expect(page["next"]?.int64Value == 2)
        #expect(page["more"] == true)

        // The same client_msg_id again: same id, duplicate, nothing new stored.
        alice.send(sendFrame(to: .user("bob"), body: "m3 again", id: "c3"))
        let again = try await alice.nextFrame()
        #expect(again["id"]?.stringValue == ids[2])
        #expect(again["duplicate"] == true)
        #expect(again["seq"]?.int64Value == 3)
        bob.send(["type": "sync", "since": 5])
        #expect(try await bob.nextFrame()["messages"]?.arrayValue?.isEmpty == true)

        // A cursor from the future is a bad frame, never a silent empty range.
        bob.send(["type": "sync", "since": 99, "ref": "f"])
        let future = try await bob.nextFrame()
        #expect(future["type"]?.stringValue == "error")
        #expect(future["code"]?.stringValue == "bad_frame")
        #expect(future["ref"]?.stringValue == "f")
        bob.send(["type": "sync", "since": "abc"])
        #expect(try await bob.nextFrame()["code"]?.stringValue == "bad_frame")
        await gateway.stop()
    }

    @Test(arguments: StoreBackend.allCases) func senderOtherDevicesGetTheMessageAndRestAPIWorks(backend: StoreBackend) async throws {
        let gateway = try await TestGateway.start(backend: backend)
        let (phone, _) = try await gateway.connect("alice")
        let (laptop, _) = try await gateway.connect("alice")
        phone.send(sendFrame(to: .user("bob"), body: "from phone", id: "p1"))
        let ack = try await phone.nextFrame()
        let copy = try await laptop.nextFrame()
        #expect(copy["type"]?.stringValue == "message")
        #expect(copy["id"] == ack["id"])
        #expect(copy["seq"] == ack["seq"])

        // REST: POST /v1/messages from a bot, GET /v1/sync, GET history.
        let bot = try await gateway.token("bob")
        let posted = try await gateway.request(.POST, "/v1/messages", token: bot, body: sendFrame(to: .user("alice"), body: "from bot", id: "bot-1").jsonText)
        #expect(posted.status == 200)
        #expect(posted.json?["type"]?.stringValue == "ack")
        #expect(try await phone.nextFrame()["body"] == "from bot")
        let sync = try await gateway.request(.GET, "/v1/sync?since=0", token: bot)
        #expect(sync.status == 200)
        #expect(sync.headers["cache-control"] == "no-store")
        #expect(sync.json?["messages"]?.arrayValue?.count == 2)
        let history = try await gateway.request(.GET, "/v1/conversations/user:alice/messages?limit=1", token: bot)
        #expect(history.json?["messages"]?.arrayValue?.count == 1)
        #expect(history.json?["more"] == true)
        let unauthorized = try await gateway.request(.GET, "/v1/sync", token: "nope")
        #expect(unauthorized.status == 401)
        #expect(unauthorized.json?["error"]?["code"]?.stringValue == "unauthorized")
        await gateway.stop()
    }
}
