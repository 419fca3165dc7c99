import GatewayCore
import GatewayTesting
import StageFanout
import StageID
import StagePersist
import Testing

/// `InMemoryGateway`, the in-memory transport of `GatewayTesting`: the real pipeline, committer
/// and hub with no socket, so a stage's effect on whole conversations is tested in-process.
@Suite("The in-memory transport: a whole gateway with no socket", .timeLimit(.minutes(1)))
struct InMemoryGatewayTests {
    static let yaml = """
        node: { id: memory-node, worker_id: 3 }
        listen: { public: { host: 127.0.0.1, port: 0 }, admin: { host: 127.0.0.1, port: 0, token: admin-token } }
        pipeline:
          - stage: test.trusting_auth
          - stage: id
          - stage: persist
          - stage: fanout
        """

    @Test func aSendIsAckedStoredAndDeliveredAndABadFrameIsRefused() async throws {
        let gateway = try InMemoryGateway(yaml: Self.yaml, registry: StageRegistry([InMemoryGateway.trustingAuth, IDStage.factory, PersistStage.factory, FanoutStage.factory]))
        let alice = try await gateway.connect("alice")
        let bob = try await gateway.connect("bob")
        #expect(try await alice.next(ofType: "hello")["user"] == "alice")
        #expect(try await gateway.gateway.authenticate(token: "carol").user == "carol")

        #expect(await alice.send(["type": "send", "to": ["user": "bob"], "body": "hi", "client_msg_id": "m1"]) == nil)
        let ack = try await alice.next(ofType: "ack")
        #expect(ack["seq"] == 1)
        #expect(ack["client_msg_id"] == "m1")
        let message = try await bob.next(ofType: "message")
        #expect(message["body"] == "hi")
        #expect(message["from"] == "alice")
        #expect(message["id"] == ack["id"])
        #expect(try await gateway.store.inbox(user: "bob", after: 0, limit: 10).entries.map(\.seq) == [1])

        // The same client_msg_id again: the same message, nothing stored twice.
        await alice.send(["type": "send", "to": ["user": "bob"], "body": "hi", "client_msg_id": "m1"])
        #expect(try await alice.next(ofType: "ack")["id"] == ack["id"])
        #expect(try await gateway.store.inbox(user: "bob", after: 0, limit: 10).entries.count == 1)

        let refused = await alice.send(["type": "sned"])
        #expect(refused?.code == .badFrame)
        #expect(try await alice.next(ofType: "error")["code"] == "bad_frame")

        alice.disconnect()
        bob.disconnect()
        #expect(gateway.gateway.hub.allSessions().isEmpty)
        await gateway.stop()
    }
}
