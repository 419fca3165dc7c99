import GatewayCore
import GatewayTesting
import StageAuth
import Testing

@Suite("AuthStage.process: a frame acts only for its sender")
struct AuthProcessTests {
    struct NobodyOnline: PresenceQuery {
        func isOnline(_ user: String) -> Bool { false }
    }

    let store = InMemoryStore()
    let stage: AuthStage

    init() async throws {
        stage = try Fixtures.stage(Fixtures.hs256Settings())
        try await store.createGroup(GroupInfo(id: "g_42", name: "team", owner: "alice", members: ["alice", "bob"], createdAt: 0))
    }

    var context: StageContext {
        StageContext(
            name: "auth", logger: .init(label: "test"), clock: TestClock(), stores: Stores(store),
            presence: NobodyOnline())
    }

    func outcome(from user: String, frame: JSONObject, to: Address?) async throws -> StageOutcome {
        var envelope = Envelope(
            kind: .send, sender: Principal(user: user, device: "d1", session: "s1", transport: .websocket), ref: "r1",
            frame: frame, to: to, body: "hi", clientMsgID: "c1", timestamp: 0)
        return try await stage.process(&envelope, context: context)
    }

    func rejection(of outcome: StageOutcome) -> GatewayError? {
        if case .reject(let error) = outcome { return error }
        return nil
    }

    @Test func fromSpoofingIsForbidden() async throws {
        let result = try await outcome(from: "alice", frame: ["type": "send", "from": "bob"], to: .user("carol"))
        #expect(rejection(of: result)?.code == .forbidden)
    }

    @Test func fromOfAnotherTypeIsForbidden() async throws {
        let result = try await outcome(from: "alice", frame: ["type": "send", "from": ["user": "alice"]], to: .user("carol"))
        #expect(rejection(of: result)?.code == .forbidden)
    }

    @Test func ownFromContinues() async throws {
        let result = try await outcome(from: "alice", frame: ["type": "send", "from": "alice"], to: .user("carol"))
        #expect(rejection(of: result) == nil)
    }

    @Test func directMessageContinues() async throws {
        let result = try await outcome(from: "carol", frame: ["type": "send"], to: .user("alice"))
        #expect(rejection(of: result) == nil)
    }

    @Test func groupNonMemberIsForbidden() async throws {
        let result = try await outcome(from: "carol", frame: ["type": "send"], to: .group("g_42"))
        #expect(rejection(of: result) == .forbidden("not a member of group 'g_42'"))
    }

    @Test func unknownGroupIsForbidden() async throws {
        let result = try await outcome(from: "alice", frame: ["type": "send"], to: .group("g_nope"))
        #expect(rejection(of: result)?.code == .forbidden)
    }

    @Test func groupMemberContinues() async throws {
        let result = try await outcome(from: "bob", frame: ["type": "send"], to: .group("g_42"))
        #expect(rejection(of: result) == nil)
    }

    @Test func removedMemberIsForbidden() async throws {
        _ = try await store.updateMembers(of: "g_42", add: [], remove: ["bob"])
        let result = try await outcome(from: "bob", frame: ["type": "send"], to: .group("g_42"))
        #expect(rejection(of: result)?.code == .forbidden)
    }
}
