import GatewayCore
import GatewayTesting
import Logging
import Synchronization
import Testing
@testable import PostgresStore

/// Inbox id order across nodes: two stores (nodes) on one database, each with its own
/// `Committer`, commit to the same inboxes; `chat_commit` refuses a batch that would put a
/// smaller id after a larger one, and the committer re-stamps it and commits again.
@Suite("Inbox order across nodes", .timeLimit(.minutes(2)))
struct InboxOrderTests {
    /// Ids like the `id` stage's: increasing per node, unique across nodes (the low 4 bits are
    /// the node), and above any floor asked for.
    final class NodeIDs: MessageIDSource {
        private let last = Mutex<UInt64>(0)
        private let node: UInt64

        init(node: UInt64) {
            self.node = node
        }

        func next() -> UInt64 { nextID(after: 0) }

        func nextID(after floor: UInt64) -> UInt64 {
            last.withLock { last in
                last = max(last, floor >> 4) + 1
                return last << 4 | node
            }
        }
    }

    /// What a node's delivery saw: per user, the seqs in the order they were delivered.
    final class DeliveryLog: Sendable {
        let seqs = Mutex<[String: [Int64]]>([:])

        func record(_ outcomes: [CommitOutcome]) {
            seqs.withLock { seqs in
                for case .stored(_, let inboxSeqs) in outcomes {
                    for entry in inboxSeqs { seqs[entry.user, default: []].append(entry.seq) }
                }
            }
        }
    }

    struct Node {
        let store: PostgresStore
        let committer: Committer
        let ids: NodeIDs
        let deliveries: DeliveryLog
    }

    static func node(_ url: String, number: UInt64, commitsInFlight: Int) async throws -> Node {
        let store = try await openPostgres(url, poolSize: 4)
        let deliveries = DeliveryLog()
        let committer = Committer(
            store: store, maxPending: 10_000, commitsInFlight: commitsInFlight, logger: Logger(label: "test.committer")
        ) { _, outcomes in deliveries.record(outcomes) }
        return Node(store: store, committer: committer, ids: NodeIDs(node: number), deliveries: deliveries)
    }

    static func groupMessage(_ id: UInt64, from sender: String, clientMsgID: String, members: [String]) -> PendingMessage {
        PendingMessage(message: message(id, from: sender, to: .group("g_order"), clientMsgID: clientMsgID), inboxes: members)
    }

    /// Node A stores a later id first; node B's earlier id for the same inboxes is refused and
    /// re-stamped above it, so every inbox shows A's message, then B's.
    @Test func anEarlierIdFromAnotherNodeIsRestampedAboveTheInboxsLast() async throws {
        let url = try freshPostgresURL()
        let a = try await Self.node(url, number: 1, commitsInFlight: 1)
        let b = try await Self.node(url, number: 2, commitsInFlight: 2)
        let members = ["alice", "bob", "carol"]
        let early = b.ids.next()
        for _ in 0..<10 { _ = a.ids.next() }
        let later = a.ids.next()
        #expect(early < later)

        let first = try await a.committer.commit(Self.groupMessage(later, from: "alice", clientMsgID: "a1", members: members), ids: a.ids)
        let second = try await b.committer.commit(Self.groupMessage(early, from: "bob", clientMsgID: "b1", members: members), ids: b.ids)

        guard case .stored(let stored, let seqs) = second else {
            Issue.record("not stored: \(second)")
            return
        }
        #expect(stored.id > later)
        #expect(seqs.map(\.seq) == [2, 2, 2])
        #expect(b.committer.orderRefusals == 1)
        #expect(a.committer.orderRefusals == 0)
        let firstID = try #require(first.storedID)
        for user in members {
            #expect(try await a.store.allEntries(of: user).map(\.message.id) == [firstID, stored.id])
        }
        // The message is stored once, under its new id.
        #expect(try await b.store.message(from: "bob", clientMsgID: "b1")?.id == stored.id)
        #expect(try await b.store.statistics().messages == 2)

        // Without an id source a refused batch cannot be re-stamped: `unavailable`, nothing stored.
        let c = try await Self.node(url, number: 3, commitsInFlight: 1)
        await #expect(throws: GatewayError.self) {
            _ = try await c.committer.commit(Self.groupMessage(early + 1, from: "carol", clientMsgID: "c1", members: members))
        }
        #expect(try await b.store.message(from: "carol", clientMsgID: "c1") == nil)
        #expect(c.committer.orderRefusals == 1)
        for node in [a, b, c] {
            await node.committer.close()
            try await node.store.close()
        }
    }

    /// Two nodes, two batches in flight each, many senders on both sending at once to one group
    /// and to each other: every inbox is in id order with seqs 1...n, every acked message is in
    /// each of its inboxes once, and each node delivered every user's seqs in increasing order.
    @Test func interleavedCommitsOfTwoNodesKeepEveryInboxInIdOrder() async throws {
        let url = try freshPostgresURL()
        let nodes = [try await Self.node(url, number: 1, commitsInFlight: 2), try await Self.node(url, number: 2, commitsInFlight: 2)]
        let users = (0..<6).map { "user\($0)" }
        let perSender = 30
        // Every user sends through both nodes at once (two devices).
        let acked: [(message: StoredMessage, inboxes: [String])] = try await withThrowingTaskGroup(
            of: [(StoredMessage, [String])].self
        ) { group in
            for (nodeIndex, node) in nodes.enumerated() {
                for (userIndex, user) in users.enumerated() {
                    group.addTask {
                        var acked: [(StoredMessage, [String])] = []
                        for k in 0..<perSender {
                            let clientMsgID = "n\(nodeIndex)-\(k)"
                            let pending: PendingMessage
                            if k % 3 == 2 {
                                let peer = users[(userIndex + k) % users.count]
                                pending = direct(node.ids.next(), from: user, to: peer, clientMsgID: clientMsgID)
                            } else {
                                pending = Self.groupMessage(node.ids.next(), from: user, clientMsgID: clientMsgID, members: users)
                            }
                            let outcome = try await node.committer.commit(pending, ids: node.ids)
                            guard case .stored(let stored, _) = outcome else {
                                Issue.record("not stored: \(outcome)")
                                continue
                            }
                            acked.append((stored, pending.inboxes))
                        }
                        return acked
                    }
                }
            }
            var all: [(message: StoredMessage, inboxes: [String])] = []
            for try await part in group { all += part.map { (message: $0.0, inboxes: $0.1) } }
            return all
        }
        #expect(acked.count == nodes.count * users.count * perSender)
        #expect(Set(acked.map(\.message.id)).count == acked.count)

        var expected: [String: Set<UInt64>] = [:]
        for item in acked {
            for user in item.inboxes { expected[user, default: []].insert(item.message.id) }
        }
        let store = nodes[0].store
        for user in users {
            let entries = try await store.allEntries(of: user)
            #expect(entries.map(\.seq) == Array(1...Int64(entries.count)), "\(user): seqs not contiguous")
            let ids = entries.map(\.message.id)
            #expect(zip(ids, ids.dropFirst()).allSatisfy { $0 < $1 }, "\(user): inbox out of id order")
            #expect(Set(ids) == expected[user], "\(user): lost or unexpected messages")
            #expect(ids.count == expected[user]?.count, "\(user): duplicates")
            for node in nodes {
                let delivered = node.deliveries.seqs.withLock { $0[user] ?? [] }
                #expect(zip(delivered, delivered.dropFirst()).allSatisfy { $0 < $1 }, "\(user): delivered out of seq order")
            }
        }
        // Both nodes' ids interleave, so some batches must have been refused and re-stamped.
        #expect(nodes.map(\.committer.orderRefusals).reduce(0, +) > 0)
        for node in nodes {
            await node.committer.close()
            try await node.store.close()
        }
    }
}

extension CommitOutcome {
    fileprivate var storedID: UInt64? {
        if case .stored(let message, _) = self { message.id } else { nil }
    }
}
