import GatewayCore
import Synchronization

/// The push tables of `InMemoryStore`, with the semantics of the SQLite store's.
final class InMemoryPushTables: Sendable {
    struct Job {
        var job: PushJob
        var listed: Int
        /// The end of the collapse window the job was created in: a merge never makes it due earlier.
        var notBefore: Int64 = 0
        var claimedUntil: Int64 = 0
    }

    struct State {
        var targets: [PushTarget] = []
        var jobs: [Int64: Job] = [:]
        /// (target, collapse key) → end of the collapse window.
        var windows: [String: Int64] = [:]
        var nextJobID: Int64 = 1
    }

    /// Guards the targets, jobs and windows.
    let state = Mutex(State())
}

extension InMemoryStore: DeviceStore, PushQueue {
    public func registerTarget(_ target: PushTarget, maxPerUser: Int) async throws -> (target: PushTarget, created: Bool) {
        try push.state.withLock { state in
            if let index = state.targets.firstIndex(where: { $0.user == target.user && $0.platform == target.platform && $0.address == target.address }) {
                state.targets[index].device = target.device
                state.targets[index].fields = target.fields
                return (state.targets[index], false)
            }
            let count = state.targets.count { $0.user == target.user }
            guard count < maxPerUser else {
                throw GatewayError(.conflict, "at most \(maxPerUser) push targets per user; delete one first")
            }
            state.targets.append(target)
            return (target, true)
        }
    }

    public func targets(of user: String) async throws -> [PushTarget] {
        push.state.withLock { $0.targets.filter { $0.user == user } }
    }

    public func target(id: String) async throws -> PushTarget? {
        push.state.withLock { $0.targets.first { $0.id == id } }
    }

    public func removeTarget(id: String, user: String?) async throws -> Bool {
        push.state.withLock { state in
            guard let index = state.targets.firstIndex(where: { $0.id == id && (user == nil || $0.user == user) }) else { return false }
            state.targets.remove(at: index)
            state.jobs = state.jobs.filter { $0.value.job.targetID != id }
            return true
        }
    }

    public func enqueue(_ items: [PushQueueItem], collapseMs: Int64, maxListed: Int) async throws {
        push.state.withLock { state in
            for item in items { state.enqueue(item, collapseMs: collapseMs, maxListed: maxListed) }
        }
    }
}

extension InMemoryPushTables.State {
    mutating func enqueue(_ item: PushQueueItem, collapseMs: Int64, maxListed: Int) {
        if let found = jobs.first(where: {
            $0.value.job.targetID == item.targetID && $0.value.job.collapseKey == item.collapseKey && $0.value.claimedUntil == 0
        }) {
            let id = found.key
            var merged = found.value
            merged.job.count += 1
            if merged.listed < maxListed {
                merged.job.messages = Array(merged.job.messages.dropLast()) + [UInt8(ascii: ",")] + item.entry + [UInt8(ascii: "]")]
                merged.listed += 1
            }
            merged.job.maxSeq = max(merged.job.maxSeq, item.seq)
            merged.job.maxMessageID = max(merged.job.maxMessageID, item.messageID)
            merged.job.body = item.body
            merged.job.due = max(merged.notBefore, min(merged.job.due, item.due))
            jobs[id] = merged
            return
        }
        guard targets.contains(where: { $0.id == item.targetID }) else { return }
        let windowKey = item.targetID + "\u{0}" + item.collapseKey
        let notBefore = windows[windowKey] ?? 0
        let due = max(item.due, notBefore)
        windows[windowKey] = due + collapseMs
        let id = nextJobID
        nextJobID += 1
        let job = PushJob(
            id: id, user: item.user, targetID: item.targetID, collapseKey: item.collapseKey, due: due, attempts: 0, count: 1, maxSeq: item.seq,
            maxMessageID: item.messageID, messages: [UInt8(ascii: "[")] + item.entry + [UInt8(ascii: "]")], body: item.body)
        jobs[id] = InMemoryPushTables.Job(job: job, listed: 1, notBefore: notBefore)
    }
}

extension InMemoryStore {
    public func claimDue(now: Int64, limit: Int, leaseMs: Int64) async throws -> [PushJob] {
        push.state.withLock { state in
            state.windows = state.windows.filter { $0.value >= now }
            let due = state.jobs.values.filter { $0.job.due <= now && $0.claimedUntil <= now }
                .sorted { ($0.job.due, $0.job.id) < ($1.job.due, $1.job.id) }.prefix(limit)
            return due.map { entry in
                state.jobs[entry.job.id]?.claimedUntil = now + leaseMs
                return entry.job
            }
        }
    }

    public func complete(_ id: Int64) async throws {
        push.state.withLock { _ = $0.jobs.removeValue(forKey: id) }
    }

    public func reschedule(_ id: Int64, due: Int64, attempts: Int) async throws {
        push.state.withLock { state in
            state.jobs[id]?.job.due = due
            state.jobs[id]?.job.attempts = attempts
            state.jobs[id]?.claimedUntil = 0
        }
    }

    public func cancel(user: String, confirmation: PushConfirmation, now: Int64) async throws -> Int {
        push.state.withLock { state in
            let covered = state.jobs.filter { _, entry in
                guard entry.job.user == user, entry.claimedUntil <= now else { return false }
                switch confirmation {
                case .delivered(let seq): return entry.job.maxSeq > 0 && entry.job.maxSeq <= seq
                case .read(let conversation, let upTo): return entry.job.collapseKey == conversation && entry.job.maxMessageID <= upTo
                }
            }
            for id in covered.keys { state.jobs.removeValue(forKey: id) }
            return covered.count
        }
    }

    public func nextDue() async throws -> Int64? {
        push.state.withLock { $0.jobs.values.map { max($0.job.due, $0.claimedUntil) }.min() }
    }

    public func queuedCount() async throws -> Int {
        push.state.withLock { $0.jobs.count }
    }
}
