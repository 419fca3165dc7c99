import Foundation
import GatewayCore
import Testing

/// The store contract (`MessageStore`, `GroupStore`, `ReceiptStore`), the same tests on every
/// backend: the embedded SQLite store and PostgreSQL.
@Suite("Store conformance (SQLite and PostgreSQL)")
struct StoreConformanceTests {
    @Test(arguments: Backend.allCases) func seqsAreContiguousPerUserAcrossBatches(backend: Backend) async throws {
        try await withStore(backend) { store in
            let first = try await store.commit([direct(1, from: "alice", to: "bob"), direct(2, from: "alice", to: "bob")])
            #expect(first.map(\.storedSeqs) == [
                [InboxSeq(user: "alice", seq: 1), InboxSeq(user: "bob", seq: 1)],
                [InboxSeq(user: "alice", seq: 2), InboxSeq(user: "bob", seq: 2)],
            ])
            let second = try await store.commit([direct(3, from: "bob", to: "alice")])
            #expect(second.map(\.storedSeqs) == [[InboxSeq(user: "bob", seq: 3), InboxSeq(user: "alice", seq: 3)]])
            let third = try await store.commit([direct(4, from: "alice", to: "carol"), direct(5, from: "carol", to: "alice")])
            #expect(third.map(\.storedSeqs) == [
                [InboxSeq(user: "alice", seq: 4), InboxSeq(user: "carol", seq: 1)],
                [InboxSeq(user: "carol", seq: 2), InboxSeq(user: "alice", seq: 5)],
            ])

            let alice = try await store.allEntries(of: "alice")
            #expect(alice.map(\.seq) == [1, 2, 3, 4, 5])
            #expect(alice.map(\.message.id) == [1, 2, 3, 4, 5])
            #expect(try await store.allEntries(of: "bob").map(\.message.id) == [1, 2, 3])
            #expect(try await store.allEntries(of: "carol").map(\.seq) == [1, 2])
            #expect(try await store.inboxHead(user: "alice") == 5)
            #expect(try await store.inboxHead(user: "bob") == 3)
            #expect(try await store.inboxHead(user: "carol") == 2)
            #expect(try await store.inboxHead(user: "nobody") == 0)
            #expect(try await store.lastMessageID() == 5)
            let statistics = try await store.statistics()
            #expect(statistics.messages == 5)
            #expect(statistics.inboxEntries == 10)
            #expect(statistics.bytes > 0)
        }
    }

    @Test(arguments: Backend.allCases) func messageToSelfGetsOneEntry(backend: Backend) async throws {
        try await withStore(backend) { store in
            let outcomes = try await store.commit([direct(7, from: "alice", to: "alice")])
            #expect(outcomes.map(\.storedSeqs) == [[InboxSeq(user: "alice", seq: 1)]])
            let entries = try await store.allEntries(of: "alice")
            #expect(entries.map(\.seq) == [1])
            #expect(entries.first?.message.conversation == "u:alice|alice")
            #expect(try await store.inboxHead(user: "alice") == 1)
            #expect(try await store.statistics().inboxEntries == 1)
        }
    }

    @Test(arguments: Backend.allCases) func emptyStore(backend: Backend) async throws {
        try await withStore(backend) { store in
            #expect(try await store.commit([]).isEmpty)
            #expect(try await store.lastMessageID() == nil)
            #expect(try await store.message(from: "alice", clientMsgID: "c1") == nil)
            let page = try await store.inbox(user: "alice", after: 0, limit: 10)
            #expect(page.entries.isEmpty && !page.more)
            let history = try await store.history(conversation: "u:alice|bob", before: nil, limit: 10)
            #expect(history.messages.isEmpty && !history.more)
            #expect(try await store.statistics().messages == 0)
        }
    }

    @Test(arguments: Backend.allCases) func duplicatesAreAnsweredWithTheOriginal(backend: Backend) async throws {
        try await withStore(backend) { store in
            let first = try await store.commit([direct(10, from: "alice", to: "bob", clientMsgID: "k1")])
            #expect(first.map(\.storedSeqs) == [[InboxSeq(user: "alice", seq: 1), InboxSeq(user: "bob", seq: 1)]])

            let outcomes = try await store.commit([
                direct(11, from: "alice", to: "bob", clientMsgID: "k1"),  // stored in an earlier batch
                direct(12, from: "alice", to: "bob", clientMsgID: "k2"),
                direct(13, from: "alice", to: "bob", clientMsgID: "k2"),  // earlier in this batch
                direct(14, from: "bob", to: "alice", clientMsgID: "k1"),  // another sender may reuse it
            ])
            #expect(outcomes.count == 4)
            #expect(outcomes[0].duplicate?.message.id == 10)
            #expect(outcomes[0].duplicate?.message == message(10, from: "alice", to: .user("bob"), clientMsgID: "k1"))
            #expect(outcomes[0].duplicate?.senderSeq == 1)
            #expect(outcomes[1].storedSeqs == [InboxSeq(user: "alice", seq: 2), InboxSeq(user: "bob", seq: 2)])
            #expect(outcomes[2].duplicate?.message.id == 12)
            #expect(outcomes[2].duplicate?.senderSeq == 2)
            #expect(outcomes[3].storedSeqs == [InboxSeq(user: "bob", seq: 3), InboxSeq(user: "alice", seq: 3)])

            #expect(try await store.message(from: "alice", clientMsgID: "k1")?.id == 10)
            #expect(try await store.message(from: "alice", clientMsgID: "k2")?.id == 12)
            #expect(try await store.message(from: "bob", clientMsgID: "k1")?.id == 14)
            #expect(try await store.allEntries(of: "alice").map(\.message.id) == [10, 12, 14])
            #expect(try await store.allEntries(of: "bob").map(\.message.id) == [10, 12, 14])
            let statistics = try await store.statistics()
            #expect(statistics.messages == 3)
            #expect(statistics.inboxEntries == 6)
        }
    }

    @Test(arguments: Backend.allCases) func duplicateOfAMessageOutsideTheSendersInboxHasSeqZero(backend: Backend) async throws {
        try await withStore(backend) { store in
            let pending = PendingMessage(message: message(20, from: "system", to: .user("bob")), inboxes: ["bob"])
            #expect(try await store.commit([pending]).map(\.storedSeqs) == [[InboxSeq(user: "bob", seq: 1)]])
            let again = try await store.commit([pending])
            #expect(again.first?.duplicate?.message.id == 20)
            #expect(again.first?.duplicate?.senderSeq == 0)
            #expect(try await store.inboxHead(user: "system") == 0)
        }
    }

    @Test(arguments: Backend.allCases) func aFailingBatchStoresNothing(backend: Backend) async throws {
        try await withStore(backend) { store in
            _ = try await store.commit([direct(100, from: "alice", to: "bob")])
            let before = try await store.statistics()

            // The last message reuses id 100 under another client_msg_id: its insert fails after
            // the earlier messages of the batch and its own inbox rows were written.
            await #expect(throws: (any Error).self) {
                try await store.commit([
                    direct(200, from: "alice", to: "bob"),
                    direct(300, from: "bob", to: "carol"),
                    direct(100, from: "alice", to: "bob", clientMsgID: "other"),
                ])
            }

            #expect(try await store.message(from: "alice", clientMsgID: "c200") == nil)
            #expect(try await store.message(from: "bob", clientMsgID: "c300") == nil)
            #expect(try await store.message(from: "alice", clientMsgID: "other") == nil)
            #expect(try await store.inboxHead(user: "alice") == 1)
            #expect(try await store.inboxHead(user: "bob") == 1)
            #expect(try await store.inboxHead(user: "carol") == 0)
            #expect(try await store.allEntries(of: "bob").map(\.message.id) == [100])
            #expect(try await store.lastMessageID() == 100)
            let after = try await store.statistics()
            #expect(after.messages == before.messages)
            #expect(after.inboxEntries == before.inboxEntries)

            // The same messages go through once the culprit is gone, with the next seqs.
            let retried = try await store.commit([direct(200, from: "alice", to: "bob")])
            #expect(retried.map(\.storedSeqs) == [[InboxSeq(user: "alice", seq: 2), InboxSeq(user: "bob", seq: 2)]])
        }
    }

    @Test(arguments: Backend.allCases) func inboxPages(backend: Backend) async throws {
        try await withStore(backend) { store in
            _ = try await store.commit((1...5).map { direct(UInt64($0), from: "alice", to: "bob") })

            var page = try await store.inbox(user: "bob", after: 0, limit: 2)
            #expect(page.entries.map(\.seq) == [1, 2])
            #expect(page.more)
            page = try await store.inbox(user: "bob", after: 2, limit: 2)
            #expect(page.entries.map(\.seq) == [3, 4])
            #expect(page.more)
            page = try await store.inbox(user: "bob", after: 4, limit: 2)
            #expect(page.entries.map(\.seq) == [5])
            #expect(!page.more)
            page = try await store.inbox(user: "bob", after: 3, limit: 2)  // exactly the rest
            #expect(page.entries.map(\.seq) == [4, 5])
            #expect(!page.more)
            page = try await store.inbox(user: "bob", after: 5, limit: 2)
            #expect(page.entries.isEmpty && !page.more)
            page = try await store.inbox(user: "bob", after: 0, limit: 0)
            #expect(page.entries.isEmpty && page.more)
            page = try await store.inbox(user: "carol", after: 0, limit: 10)
            #expect(page.entries.isEmpty && !page.more)
        }
    }

    @Test(arguments: Backend.allCases) func historyPagesNewestFirstAndSharesOneKeyPerPair(backend: Backend) async throws {
        try await withStore(backend) { store in
            _ = try await store.commit([
                direct(1, from: "alice", to: "bob"), direct(2, from: "bob", to: "alice"),
                direct(3, from: "alice", to: "bob"), direct(4, from: "bob", to: "alice"),
                direct(5, from: "alice", to: "bob"), direct(6, from: "alice", to: "carol"),
                PendingMessage(message: message(7, from: "alice", to: .group("g_1")), inboxes: ["alice", "bob"]),
            ])
            let key = Address.user("bob").conversationKey(sender: "alice")
            #expect(key == Address.user("alice").conversationKey(sender: "bob"))

            var page = try await store.history(conversation: key, before: nil, limit: 2)
            #expect(page.messages.map(\.id) == [5, 4])
            #expect(page.more)
            page = try await store.history(conversation: key, before: 4, limit: 2)
            #expect(page.messages.map(\.id) == [3, 2])
            #expect(page.more)
            page = try await store.history(conversation: key, before: 2, limit: 2)
            #expect(page.messages.map(\.id) == [1])
            #expect(!page.more)
            page = try await store.history(conversation: key, before: UInt64.max, limit: 10)
            #expect(page.messages.map(\.id) == [5, 4, 3, 2, 1])
            #expect(!page.more)
            #expect(page.messages.map(\.from) == ["alice", "bob", "alice", "bob", "alice"])
            #expect(page.messages.map(\.to) == [.user("bob"), .user("alice"), .user("bob"), .user("alice"), .user("bob")])

            #expect(try await store.history(conversation: "u:alice|carol", before: nil, limit: 10).messages.map(\.id) == [6])
            let group = try await store.history(conversation: "g:g_1", before: nil, limit: 10).messages
            #expect(group.map(\.id) == [7])
            #expect(group.first?.to == .group("g_1"))
        }
    }

    @Test(arguments: Backend.allCases) func messagesRoundTripExactly(backend: Backend) async throws {
        try await withStore(backend) { store in
            let messages = [
                message(1, from: "alice", to: .user("bob"), body: #"{"text":"héllo ✓ 👋"}"#, attachments: #"[{"media_id":"m1"}]"#),
                message(2, from: "alice", to: .group("g.team-1"), body: #""plain""#),
                StoredMessage(id: 3, from: "alice", to: .user("bob"), timestamp: -1, clientMsgID: "empty", body: [], attachments: []),
                message(UInt64(Int64.max) - 1, from: "alice", to: .user("bob")),
            ]
            _ = try await store.commit(messages.map { PendingMessage(message: $0, inboxes: ["alice"]) })
            let entries = try await store.allEntries(of: "alice")
            #expect(entries.map(\.message) == messages)
            #expect(try await store.message(from: "alice", clientMsgID: "c1") == messages[0])
            #expect(try await store.lastMessageID() == UInt64(Int64.max) - 1)
        }
    }

    @Test(arguments: Backend.allCases) func concurrentCommitsKeepSeqsContiguousAndUnique(backend: Backend) async throws {
        try await withStore(backend) { store in
            let users = (0..<5).map { "user\($0)" }
            let tasks = 40
            let outcomes = try await withThrowingTaskGroup(of: [CommitOutcome].self) { group in
                for task in 0..<tasks {
                    group.addTask {
                        let batch = (0..<(task % 4 + 1)).map { index in
                            direct(
                                UInt64(task * 10 + index + 1), from: users[task % users.count],
                                to: users[(task + index + 1) % users.count])
                        }
                        return try await store.commit(batch)
                    }
                }
                var all: [CommitOutcome] = []
                for try await batch in group { all += batch }
                return all
            }

            let expectedMessages = (0..<tasks).reduce(0) { $0 + $1 % 4 + 1 }
            #expect(outcomes.count == expectedMessages)
            var seqsByUser: [String: [Int64]] = [:]
            for outcome in outcomes {
                let seqs = try #require(outcome.storedSeqs)
                for seq in seqs { seqsByUser[seq.user, default: []].append(seq.seq) }
            }
            var entryCount = 0
            for user in users {
                let given = (seqsByUser[user] ?? []).sorted()
                #expect(given == Array(1...Int64(given.count)), "seqs given to \(user)")
                let entries = try await store.allEntries(of: user)
                #expect(entries.map(\.seq) == given)
                #expect(Set(entries.map(\.message.id)).count == entries.count, "a message appears once per inbox")
                #expect(try await store.inboxHead(user: user) == Int64(given.count))
                entryCount += entries.count
            }
            let statistics = try await store.statistics()
            #expect(statistics.messages == expectedMessages)
            #expect(statistics.inboxEntries == entryCount)
        }
    }

    @Test(arguments: Backend.allCases) func createReadAndConflict(backend: Backend) async throws {
        try await withStore(backend) { store in
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

    @Test(arguments: Backend.allCases) func cachedMembershipFollowsEveryChange(backend: Backend) async throws {
        try await withStore(backend) { store in
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

    @Test(arguments: Backend.allCases) func groupsOfAUserAreSortedById(backend: Backend) async throws {
        try await withStore(backend) { store in
            let b = GroupInfo(id: "g_b", name: "B", owner: "alice", members: ["alice", "bob"], createdAt: 1)
            let a = GroupInfo(id: "g_a", name: "A", owner: "carol", members: ["carol", "bob", "dave"], createdAt: 2)
            let c = GroupInfo(id: "g_c", name: "C", owner: "carol", members: ["carol"], createdAt: 3)
            for group in [b, a, c] { try await store.createGroup(group) }
            #expect(try await store.groups(of: "bob") == [a, b])
            #expect(try await store.groups(of: "carol") == [a, c])
            #expect(try await store.groups(of: "erin") == [])
        }
    }

    @Test(arguments: Backend.allCases) func updateMembersKeepsTheOrderOfJoining(backend: Backend) async throws {
        try await withStore(backend) { store in
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

    @Test(arguments: Backend.allCases) func readPositionsOnlyMoveForward(backend: Backend) async throws {
        try await withStore(backend) { store async throws in
            #expect(try await store.readPositions(conversation: "g:g_1") == [:])
            #expect(try await store.markRead(user: "bob", conversation: "g:g_1", upTo: 10))
            #expect(try await store.markRead(user: "carol", conversation: "g:g_1", upTo: 7))
            #expect(try await !store.markRead(user: "bob", conversation: "g:g_1", upTo: 10), "the same position again")
            #expect(try await !store.markRead(user: "bob", conversation: "g:g_1", upTo: 3), "never back")
            let far: UInt64 = UInt64(Int64.max) - 5
            #expect(try await store.markRead(user: "bob", conversation: "g:g_1", upTo: far))
            let expected: [String: UInt64] = ["bob": far, "carol": 7]
            #expect(try await store.readPositions(conversation: "g:g_1") == expected)
            #expect(try await store.readPositions(conversation: "u:alice|bob") == [:])
        }
    }
}
