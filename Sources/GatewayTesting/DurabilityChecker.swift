import GatewayCore
import Synchronization

/// An operation log of sends and the check of what the store kept, as `RELIABILITY.md` counts
/// for every durability test: read every recipient's inbox through the public `sync` API after
/// the dust settles, then `verify(inboxes:)`.
///
/// Record each attempt with `sent(…)` before the frame leaves, and its answer with `acked(…)`
/// or `failed(…)`; an attempt whose connection died first stays `unknown`. A resend with the
/// same `client_msg_id` is one more attempt of the same operation.
///
/// ```swift
/// let log = DurabilityChecker()
/// log.sent(sender: "alice", clientMsgID: "a1", to: .user("bob"), recipients: ["alice", "bob"])
/// log.acked(sender: "alice", clientMsgID: "a1", id: "7150…")
/// // … kill, restart, resend what has no answer …
/// let report = log.verify(inboxes: ["alice": aliceInbox, "bob": bobInbox])
/// #expect(report.counts.isClean, "\(report)")
/// ```
///
/// `Sendable`: the state is behind a `Mutex`, so concurrent senders share one log.
public final class DurabilityChecker: Sendable {
    /// What the sender learnt of one attempt.
    public enum Outcome: Sendable, Hashable {
        /// An `ack` with the message id.
        case ok(id: String)
        /// An `error` answer (`unavailable`, `forbidden`…): the message must not be stored.
        case error(code: String)
        /// No answer: the connection died first. Stored or not, both are allowed.
        case unknown
    }

    /// One logical send: every attempt with the same sender and `client_msg_id`.
    public struct Operation: Sendable {
        public let sender: String
        public let clientMsgID: String
        public let conversation: Address
        /// Users whose inbox must hold the message: sender and peer, or the group's members.
        public let recipients: Set<String>
        public internal(set) var outcomes: [Outcome]

        /// The ids acked, over every attempt.
        public var ackedIDs: Set<String> {
            Set(outcomes.compactMap { if case .ok(let id) = $0 { id } else { nil } })
        }
    }

    /// RELIABILITY.md's counters; every one must be 0.
    public struct Counts: Sendable, Equatable, CustomStringConvertible {
        /// Acked, but missing from every inbox (or stored under another id than the acked one).
        public var lost = 0
        /// The same `client_msg_id` under two ids, two acks with different ids, or an id twice in one inbox.
        public var duplicated = 0
        /// Stored, but never sent.
        public var unexpected = 0
        /// Every attempt got an error, yet it is stored.
        public var failedButPresent = 0
        /// Stored, but not in every recipient's inbox (or in someone else's).
        public var torn = 0
        /// Ids out of order within a conversation in one inbox.
        public var order = 0
        /// Inboxes whose `seq` values are not 1, 2, 3… (a hole in the sync queue).
        public var gaps = 0

        public init() {}

        public var isClean: Bool { self == Counts() }

        public var description: String {
            "lost \(lost), duplicated \(duplicated), unexpected \(unexpected), failed_but_present \(failedButPresent), torn \(torn), order \(order), gaps \(gaps)"
        }
    }

    /// The counters and, for each non-zero one, a few examples to read in a failure message.
    public struct Report: Sendable, CustomStringConvertible {
        public var counts = Counts()
        public var examples: [String] = []
        /// Messages found in the inboxes (distinct ids).
        public var storedMessages = 0
        /// Operations with at least one `ok`.
        public var ackedOperations = 0

        mutating func note(_ example: String) {
            if examples.count < 20 { examples.append(example) }
        }

        public var description: String {
            "\(counts) (\(storedMessages) stored, \(ackedOperations) acked)" + (examples.isEmpty ? "" : ": " + examples.joined(separator: "; "))
        }
    }

    private struct Key: Hashable {
        var sender: String
        var clientMsgID: String
    }

    // Guards the operations by (sender, client_msg_id), in the order first sent.
    private let state = Mutex<(operations: [Key: Operation], order: [Key])>(([:], []))
    /// How many operations have an `ok`, for `waitForAcks`.
    private let acks = Observed(0)
    /// Actions of `whenAcked` not yet run: the ack count each waits for.
    private let triggers = Mutex<[(count: Int, action: @Sendable () -> Void)]>([])

    public init() {}

    /// An attempt leaves: the first one for this `client_msg_id` creates the operation.
    public func sent(sender: String, clientMsgID: String, to conversation: Address, recipients: Set<String>) {
        let key = Key(sender: sender, clientMsgID: clientMsgID)
        state.withLock { state in
            if state.operations[key] == nil {
                state.operations[key] = Operation(sender: sender, clientMsgID: clientMsgID, conversation: conversation, recipients: recipients, outcomes: [])
                state.order.append(key)
            }
            state.operations[key]!.outcomes.append(.unknown)
        }
    }

    /// The last attempt of this operation got an `ack` with `id`.
    public func acked(sender: String, clientMsgID: String, id: String) {
        resolve(sender: sender, clientMsgID: clientMsgID, outcome: .ok(id: id))
    }

    /// The last attempt of this operation got an `error` with `code`.
    public func failed(sender: String, clientMsgID: String, code: String) {
        resolve(sender: sender, clientMsgID: clientMsgID, outcome: .error(code: code))
    }

    private func resolve(sender: String, clientMsgID: String, outcome: Outcome) {
        let key = Key(sender: sender, clientMsgID: clientMsgID)
        let firstAck = state.withLock { state -> Bool in
            guard var operation = state.operations[key] else { return false }
            let wasAcked = !operation.ackedIDs.isEmpty
            defer { state.operations[key] = operation }
            if let last = operation.outcomes.lastIndex(of: .unknown) {
                operation.outcomes[last] = outcome
            } else {
                operation.outcomes.append(outcome)
            }
            return !wasAcked && !operation.ackedIDs.isEmpty
        }
        guard firstAck else { return }
        acks.update { $0 += 1 }
        let count = acks.value
        let due = triggers.withLock { triggers in
            let due = triggers.filter { $0.count <= count }
            triggers.removeAll { $0.count <= count }
            return due
        }
        for trigger in due { trigger.action() }
    }

    /// Runs `action` once `count` operations have an `ok`: synchronously, inside the `acked`
    /// call that made it so (at once if they already have). A test that kills a server after n
    /// acks signals it here: a task woken by `waitForAcks` may run only after the pumps, on a
    /// busy 2-core machine, have had every remaining message acked, and nothing is then
    /// killed mid-stream.
    public func whenAcked(_ count: Int, _ action: @escaping @Sendable () -> Void) {
        let now = triggers.withLock { triggers -> Bool in
            if acks.value >= count { return true }
            triggers.append((count, action))
            return false
        }
        if now { action() }
    }

    /// Returns once `count` operations have an `ok` (true), or after `timeout` (false): how a
    /// test picks a moment mid-stream (a kill after n acks) without polling.
    public func waitForAcks(_ count: Int, timeout: Duration = .seconds(120)) async -> Bool {
        await acks.wait(timeout: timeout) { $0 >= count }
    }

    /// Every operation, in the order first sent.
    public var operations: [Operation] {
        state.withLock { state in state.order.map { state.operations[$0]! } }
    }

    /// Operations of `sender` with no `ok` yet: what a client resends after a reconnect.
    public func unacked(sender: String) -> [Operation] {
        operations.filter { $0.sender == sender && $0.ackedIDs.isEmpty }
    }

    /// How many operations have an `ok`.
    public var ackedCount: Int {
        state.withLock { state in state.operations.values.filter { !$0.ackedIDs.isEmpty }.count }
    }

    /// Counts, from every recipient's inbox (user → messages as `sync` returns them, in `seq`
    /// order), what RELIABILITY.md counts. Inboxes of users the log never names may be given;
    /// every stored message in them must come from a logged operation.
    public func verify(inboxes: [String: [JSONObject]]) -> Report {
        var report = Report()
        let operations = state.withLock { $0.operations }
        // Where each stored id is, and which ids each (sender, client_msg_id) is stored under.
        var holders: [String: Set<String>] = [:]
        var idsByKey: [Key: Set<String>] = [:]
        for (user, inbox) in inboxes.sorted(by: { $0.key < $1.key }) {
            let seqs = inbox.map { $0["seq"]?.int64Value ?? -1 }
            if seqs != (0..<inbox.count).map({ Int64($0 + 1) }) {
                report.counts.gaps += 1
                report.note("\(user)'s inbox seqs are not 1…\(inbox.count)")
            }
            var seen: Set<String> = []
            var lastByConversation: [String: UInt64] = [:]
            for message in inbox {
                guard let id = message["id"]?.stringValue else {
                    report.counts.unexpected += 1
                    report.note("a message without an id in \(user)'s inbox")
                    continue
                }
                if !seen.insert(id).inserted {
                    report.counts.duplicated += 1
                    report.note("\(id) twice in \(user)'s inbox")
                    continue
                }
                holders[id, default: []].insert(user)
                let from = message["from"]?.stringValue ?? ""
                let clientMsgID = message["client_msg_id"]?.stringValue ?? ""
                let key = Key(sender: from, clientMsgID: clientMsgID)
                idsByKey[key, default: []].insert(id)
                let conversation: String
                if let group = message["to"]?["group"]?.stringValue {
                    conversation = "g:" + group
                } else {
                    conversation = [from, message["to"]?["user"]?.stringValue ?? ""].sorted().joined(separator: "|")
                }
                let numeric = UInt64(id) ?? 0
                if let last = lastByConversation[conversation], numeric <= last {
                    report.counts.order += 1
                    report.note("\(id) after \(last) in \(conversation) in \(user)'s inbox")
                }
                lastByConversation[conversation] = numeric
            }
        }
        report.storedMessages = holders.count
        var explained: Set<String> = []
        for (key, operation) in operations.sorted(by: { ($0.key.sender, $0.key.clientMsgID) < ($1.key.sender, $1.key.clientMsgID) }) {
            let stored = idsByKey[key] ?? []
            let acked = operation.ackedIDs
            explained.formUnion(stored)
            if !acked.isEmpty { report.ackedOperations += 1 }
            if stored.count > 1 || acked.count > 1 {
                report.counts.duplicated += 1
                report.note("\(operation.sender)/\(operation.clientMsgID) stored as \(stored.sorted()), acked as \(acked.sorted())")
            }
            if !acked.isEmpty, stored.isDisjoint(with: acked) {
                report.counts.lost += 1
                report.note("\(operation.sender)/\(operation.clientMsgID) acked as \(acked.sorted()) but stored as \(stored.sorted())")
                continue
            }
            let failedEveryTime = acked.isEmpty && operation.outcomes.contains { if case .error = $0 { true } else { false } }
                && !operation.outcomes.contains(.unknown)
            if failedEveryTime, !stored.isEmpty {
                report.counts.failedButPresent += 1
                report.note("\(operation.sender)/\(operation.clientMsgID) got \(operation.outcomes) yet is stored")
            }
            for id in stored where holders[id] != operation.recipients {
                report.counts.torn += 1
                let missing = operation.recipients.subtracting(holders[id] ?? [])
                let extra = (holders[id] ?? []).subtracting(operation.recipients)
                report.note("\(id) missing from \(missing.sorted().prefix(5)), extra in \(extra.sorted().prefix(5))")
            }
        }
        for id in Set(holders.keys).subtracting(explained).sorted() {
            report.counts.unexpected += 1
            report.note("\(id) stored but never sent")
        }
        return report
    }
}
