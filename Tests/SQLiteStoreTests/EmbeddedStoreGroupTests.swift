import GatewayCore
import Testing
@testable import SQLiteStore

@Suite("EmbeddedStore groups")
struct EmbeddedStoreGroupTests {
    @Test func createReadAndConflict() async throws {
        try await withStore { store, _ in
            let team = GroupInfo(id: "g_1", name: "Team", owner: "alice", members: ["alice", "bob"], createdAt: 1_700_000_000_000)
            try await store.createGroup(team)
            #expect(try await store.group("g_1") == team)
            #expect(try await store.members(of: "g_1") == ["alice", "bob"])
            #expect(try await store.isMember("bob", of: "g_1"))
            #expect(try await !store.isMember("carol", of: "g_1"))

            let error = await #expect(throws: GatewayError.self) {
                try await store.createGroup(GroupInfo(id: "g_1", name: "Other", owner: "carol", members: ["carol"], createdAt: 2))
            }
            #expect(error?.code == .conflict)
            #expect(try await store.group("g_1") == team, "a conflicting create changes nothing")

            #expect(try await store.group("nope") == nil)
            #expect(try await store.members(of: "nope") == nil)
            #expect(try await !store.isMember("alice", of: "nope"))

            let empty = GroupInfo(id: "g_empty", name: "Empty", owner: "alice", members: [], createdAt: 3)
            try await store.createGroup(empty)
            #expect(try await store.members(of: "g_empty") == [])
        }
    }

    /// Sends read members and membership from a cache: every change must show at once.
    @Test func cachedMembershipFollowsEveryChange() async throws {
        try await withStore { store, _ in
            #expect(try await store.members(of: "g_1") == nil)
            #expect(try await store.isMember("alice", of: "g_1") == false)
            try await store.createGroup(GroupInfo(id: "g_1", name: "Team", owner: "alice", members: ["alice", "bob"], createdAt: 1))
            #expect(try await store.members(of: "g_1") == ["alice", "bob"])
            #expect(try await store.isMember("bob", of: "g_1"))
            #expect(try await store.isMember("carol", of: "g_1") == false)
            _ = try await store.updateMembers(of: "g_1", add: ["carol"], remove: ["bob"])
            #expect(try await store.members(of: "g_1") == ["alice", "carol"])
            #expect(try await store.isMember("bob", of: "g_1") == false)
            #expect(try await store.isMember("carol", of: "g_1"))
            // A failed change (no such group) changes nothing that was cached.
            await #expect(throws: (any Error).self) { _ = try await store.updateMembers(of: "g_2", add: ["x"], remove: []) }
            #expect(try await store.members(of: "g_1") == ["alice", "carol"])
        }
    }

    @Test func groupsOfAUserAreSortedById() async throws {
        try await withStore { store, _ in
            let b = GroupInfo(id: "g_b", name: "B", owner: "alice", members: ["alice", "bob"], createdAt: 1)
            let a = GroupInfo(id: "g_a", name: "A", owner: "carol", members: ["carol", "bob", "dave"], createdAt: 2)
            let c = GroupInfo(id: "g_c", name: "C", owner: "carol", members: ["carol"], createdAt: 3)
            for group in [b, a, c] { try await store.createGroup(group) }
            #expect(try await store.groups(of: "bob") == [a, b])
            #expect(try await store.groups(of: "carol") == [a, c])
            #expect(try await store.groups(of: "erin") == [])
        }
    }

    @Test func updateMembersKeepsTheOrderOfJoining() async throws {
        try await withStore { store, _ in
            try await store.createGroup(GroupInfo(id: "g_1", name: "Team", owner: "alice", members: ["alice", "bob"], createdAt: 1))

            var info = try await store.updateMembers(of: "g_1", add: ["carol", "bob", "dave"], remove: ["alice"])
            #expect(info.members == ["bob", "carol", "dave"])
            #expect(info.owner == "alice" && info.name == "Team" && info.createdAt == 1)
            info = try await store.updateMembers(of: "g_1", add: ["alice"], remove: [])
            #expect(info.members == ["bob", "carol", "dave", "alice"])
            info = try await store.updateMembers(of: "g_1", add: ["erin"], remove: ["erin", "nobody"])
            #expect(info.members == ["bob", "carol", "dave", "alice"])
            #expect(try await store.members(of: "g_1") == info.members)
            #expect(try await !store.isMember("erin", of: "g_1"))
            #expect(try await store.groups(of: "alice").map(\.members) == [info.members])

            let error = await #expect(throws: GatewayError.self) {
                try await store.updateMembers(of: "nope", add: ["alice"], remove: [])
            }
            #expect(error?.code == .notFound)
            #expect(try await store.group("nope") == nil)
        }
    }
}
