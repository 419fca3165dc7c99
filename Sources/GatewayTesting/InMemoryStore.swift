import GatewayCore
import Synchronization

/// A `MessageStore` and `GroupStore` in memory, with the same semantics as the real backends
/// (contiguous seqs, dedupe by sender and `client_msg_id`, all-or-nothing batches). For stage
/// tests that need stores without a file; the gateway's own end-to-end tests use SQLite.
public final class InMemoryStore: MessageStore, GroupStore, Sendable {
    struct State {
        var messages: [UInt64: StoredMessage] = [:]
        var dedupe: [String: UInt64] = [:]
        var senderSeq: [UInt64: Int64] = [:]
        var inboxes: [String: [InboxEntry]] = [:]
        var groups: [String: GroupInfo] = [:]
        var closed = false
    }

    /// Guards every table.
    private let state = Mutex(State())

    public init() {}

    public func commit(_ batch: [PendingMessage]) async throws -> [CommitOutcome] {
        try state.withLock { state in
            guard !state.closed else { throw GatewayError.unavailable("store closed") }
            var copy = state
            var outcomes: [CommitOutcome] = []
            for pending in batch {
                let m = pending.message
                let key = m.from + "\u{0}" + m.clientMsgID
                if let existing = copy.dedupe[key], let original = copy.messages[existing] {
                    outcomes.append(.duplicate(original, senderSeq: copy.senderSeq[existing] ?? 0))
                    continue
                }
                copy.messages[m.id] = m
                copy.dedupe[key] = m.id
                var seqs: [InboxSeq] = []
                for user in pending.inboxes {
                    let seq = Int64((copy.inboxes[user]?.count ?? 0) + 1)
                    copy.inboxes[user, default: []].append(InboxEntry(seq: seq, message: m))
                    seqs.append(InboxSeq(user: user, seq: seq))
                    if user == m.from { copy.senderSeq[m.id] = seq }
                }
                outcomes.append(.stored(m, seqs: seqs))
            }
            state = copy
            return outcomes
        }
    }

    public func inbox(user: String, after: Int64, limit: Int) async throws -> (entries: [InboxEntry], more: Bool) {
        state.withLock { state in
            let all = state.inboxes[user] ?? []
            let rest = all.filter { $0.seq > after }
            return (Array(rest.prefix(limit)), rest.count > limit)
        }
    }

    public func inboxHead(user: String) async throws -> Int64 {
        state.withLock { Int64($0.inboxes[user]?.count ?? 0) }
    }

    public func history(conversation: String, before: UInt64?, limit: Int) async throws -> (messages: [StoredMessage], more: Bool) {
        state.withLock { state in
            let matching = state.messages.values
                .filter { message in message.conversation == conversation && (before.map { message.id < $0 } ?? true) }
                .sorted { $0.id > $1.id }
            return (Array(matching.prefix(limit)), matching.count > limit)
        }
    }

    public func message(from sender: String, clientMsgID: String) async throws -> StoredMessage? {
        state.withLock { state in
            state.dedupe[sender + "\u{0}" + clientMsgID].flatMap { state.messages[$0] }
        }
    }

    public func lastMessageID() async throws -> UInt64? {
        state.withLock { $0.messages.keys.max() }
    }

    public func statistics() async throws -> StoreStatistics {
        state.withLock { state in
            StoreStatistics(
                messages: state.messages.count, inboxEntries: state.inboxes.values.reduce(0) { $0 + $1.count },
                bytes: state.messages.values.reduce(0) { $0 + $1.body.count })
        }
    }

    public func close() async throws {
        state.withLock { $0.closed = true }
    }

    // MARK: GroupStore

    public func createGroup(_ group: GroupInfo) async throws {
        try state.withLock { state in
            guard state.groups[group.id] == nil else { throw GatewayError(.conflict, "group '\(group.id)' exists") }
            state.groups[group.id] = group
        }
    }

    public func group(_ id: String) async throws -> GroupInfo? {
        state.withLock { $0.groups[id] }
    }

    public func members(of group: String) async throws -> [String]? {
        state.withLock { $0.groups[group]?.members }
    }

    public func isMember(_ user: String, of group: String) async throws -> Bool {
        state.withLock { $0.groups[group]?.members.contains(user) ?? false }
    }

    public func groups(of user: String) async throws -> [GroupInfo] {
        state.withLock { state in state.groups.values.filter { $0.members.contains(user) }.sorted { $0.id < $1.id } }
    }

    public func updateMembers(of group: String, add: [String], remove: [String]) async throws -> GroupInfo {
        try state.withLock { state in
            guard var info = state.groups[group] else { throw GatewayError.notFound("no group '\(group)'") }
            for user in add where !info.members.contains(user) { info.members.append(user) }
            info.members.removeAll { remove.contains($0) }
            state.groups[group] = info
            return info
        }
    }
}
