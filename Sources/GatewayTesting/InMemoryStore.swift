import GatewayCore
import Synchronization

/// A `MessageStore` and `GroupStore` in memory, with the same semantics as the real backends
/// (contiguous seqs, dedupe by sender and `client_msg_id`, all-or-nothing batches, fanout-on-read
/// materialized on read as docs/GROUPS.md describes). For stage
/// tests that need stores without a file; the gateway's own end-to-end tests use SQLite.
public final class InMemoryStore: MessageStore, GroupStore, ReceiptStore, Sendable {
    struct State {
        var messages: [UInt64: StoredMessage] = [:]
        var dedupe: [String: UInt64] = [:]
        var senderSeq: [UInt64: Int64] = [:]
        var inboxes: [String: [InboxEntry]] = [:]
        var groups: [String: GroupInfo] = [:]
        var reads: [String: [String: UInt64]] = [:]
        /// Ids of group messages kept as fanout-on-read.
        var readFanout: Set<UInt64> = []
        /// Fanout-on-read cursors: user → group → the id up to which the inbox is complete.
        var cursors: [String: [String: UInt64]] = [:]
        var closed = false
    }

    /// Guards every table.
    private let state = Mutex(State())
    /// Push targets and the push queue (`InMemoryStore+Push.swift`).
    let push = InMemoryPushTables()
    /// Media records (the `MediaMetadataStore` conformance, InMemoryMediaMetadata.swift).
    let mediaMetadata = InMemoryMediaMetadata()

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
                // Fanout-on-read as the SQLite store does it (docs/GROUPS.md): the sender's waiting
                // messages of the group first; members with some waiting are held back.
                var fanoutOnRead = pending.isFanoutOnRead
                var held: Set<String> = []
                if case .group(let group) = m.to, let newest = copy.newestReadFanout(group: group) {
                    if pending.inboxes.contains(where: { $0 != m.from }) {
                        held = Set(copy.cursors.compactMap { user, groups in (groups[group].map { $0 < newest } ?? false) ? user : nil })
                        held.remove(m.from)
                    }
                    if pending.inboxes.contains(m.from) { copy.materialize(user: m.from, group: group) }
                    if !held.isEmpty { fanoutOnRead = true }
                }
                copy.messages[m.id] = m
                copy.dedupe[key] = m.id
                var seqs: [InboxSeq] = []
                for user in pending.inboxes where !held.contains(user) {
                    let seq = Int64((copy.inboxes[user]?.count ?? 0) + 1)
                    copy.inboxes[user, default: []].append(InboxEntry(seq: seq, message: m))
                    seqs.append(InboxSeq(user: user, seq: seq))
                    if user == m.from { copy.senderSeq[m.id] = seq }
                }
                if fanoutOnRead, case .group(let group) = m.to {
                    copy.readFanout.insert(m.id)
                    for entry in seqs {
                        if let cursor = copy.cursors[entry.user]?[group], cursor < m.id { copy.cursors[entry.user]?[group] = m.id }
                    }
                }
                outcomes.append(.stored(m, seqs: seqs))
            }
            state = copy
            return outcomes
        }
    }

    public func inbox(user: String, after: Int64, limit: Int) async throws -> (entries: [InboxEntry], more: Bool) {
        state.withLock { state in
            state.materialize(user: user, group: nil)
            let all = state.inboxes[user] ?? []
            let rest = all.filter { $0.seq > after }
            return (Array(rest.prefix(limit)), rest.count > limit)
        }
    }

    public func inboxHead(user: String) async throws -> Int64 {
        state.withLock { state in
            state.materialize(user: user, group: nil)
            return Int64(state.inboxes[user]?.count ?? 0)
        }
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
            var group = group
            var members: [String] = []
            for user in group.members where !members.contains(user) { members.append(user) }
            group.members = members
            state.groups[group.id] = group
            state.startCursors(users: members, group: group.id)
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

    public func updateMembers(of group: String, add: [String], remove: [String], maxMembers: Int) async throws -> GroupInfo {
        try state.withLock { state in
            guard var info = state.groups[group] else { throw GatewayError.notFound("no group '\(group)'") }
            let remaining = info.members.filter { !remove.contains($0) }
            let after = remaining.count + Set(add).subtracting(remaining).subtracting(remove).count
            guard after <= maxMembers else { throw GatewayError(.tooLarge, "a group has at most \(maxMembers) members") }
            var added: [String] = []
            for user in add where !info.members.contains(user) {
                info.members.append(user)
                added.append(user)
            }
            state.startCursors(users: added, group: group)
            for user in remove where info.members.contains(user) {
                state.materialize(user: user, group: group)
                state.cursors[user]?[group] = nil
            }
            info.members.removeAll { remove.contains($0) }
            state.groups[group] = info
            return info
        }
    }

    // MARK: ReceiptStore

    public func markRead(user: String, conversation: String, upTo: UInt64) async throws -> Bool {
        state.withLock { state in
            let old = state.reads[conversation]?[user] ?? 0
            guard upTo > old else { return false }
            state.reads[conversation, default: [:]][user] = upTo
            return true
        }
    }

    public func readPositions(conversation: String) async throws -> [String: UInt64] {
        state.withLock { $0.reads[conversation] ?? [:] }
    }
}

// MARK: Fanout-on-read

extension InMemoryStore.State {
    /// The newest fanout-on-read message of `group`.
    func newestReadFanout(group: String) -> UInt64? {
        readFanout.filter { messages[$0]?.to == .group(group) }.max()
    }

    /// Appends to `user`'s inbox, in id order, the fanout-on-read messages above their cursors
    /// (of every group, or only `group`), skipping the ones `user` sent, and moves the cursors.
    /// In memory there is no transaction to bound, so it takes everything at once; seen from
    /// outside, the result is what the SQLite store's bounded steps converge to.
    mutating func materialize(user: String, group: String?) {
        guard let groups = cursors[user], !groups.isEmpty else { return }
        let waiting = readFanout.compactMap { id -> StoredMessage? in
            guard let message = messages[id], case .group(let g) = message.to, group == nil || group == g,
                let cursor = groups[g], id > cursor
            else { return nil }
            return message
        }.sorted { $0.id < $1.id }
        for message in waiting {
            guard case .group(let g) = message.to else { continue }
            cursors[user]?[g] = message.id
            if message.from == user { continue }
            let seq = Int64((inboxes[user]?.count ?? 0) + 1)
            inboxes[user, default: []].append(InboxEntry(seq: seq, message: message))
        }
    }

    /// Starts new members' cursors at the group's newest message.
    mutating func startCursors(users: [String], group: String) {
        if users.isEmpty { return }
        let newest = messages.values.filter { $0.to == .group(group) }.map(\.id).max() ?? 0
        for user in users { cursors[user, default: [:]][group] = newest }
    }
}
