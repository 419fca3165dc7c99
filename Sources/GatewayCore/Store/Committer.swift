import Logging
import Synchronization

/// Group commit: concurrent sends share one store transaction (and one fsync).
///
/// Callers queue a message and wait. Whoever finds the committer idle starts a flush task that
/// takes everything queued (up to `maxBatch`), commits it in one `MessageStore.commit`, then,
/// still in commit order, hands the batch to `delivery` (live fanout), calls each message's
/// `answer` (the sender's ack, when the sender asked for it so), and resumes the callers.
/// Delivering in commit order is what keeps live delivery to a session in inbox `seq` order.
/// The queue is bounded: past `maxPending` waiting messages a send fails with `unavailable`.
public final class Committer: Sendable {
    public typealias Delivery = @Sendable (_ batch: [PendingMessage], _ outcomes: [CommitOutcome]) -> Void

    struct State {
        /// The highest message id queued so far: ids are queued in increasing order.
        var lastQueuedID: UInt64 = 0
        /// Queued messages, and their tickets at the same index (two arrays, so that a flush
        /// takes the messages as they are, without copying each).
        var queue: [PendingMessage] = []
        var tickets: [CommitTicket] = []
        var flushing = false
        var closed = false
        var idleWaiters: [CheckedContinuation<Void, Never>] = []
    }

    /// Guards the queue of waiting messages and the flushing flag.
    private let state = Mutex(State())
    private let store: any MessageStore
    private let maxPending: Int
    private let maxBatch: Int
    private let delivery: Delivery
    private let logger: Logger
    /// The fault seam: tests make the next commits fail or slow.
    public let faults: StoreFaults
    /// Whether the last commit (or probe) succeeded: `/readyz` answers 503 while it did not.
    private let healthy = Atomic<Bool>(true)

    public init(store: any MessageStore, maxPending: Int, maxBatch: Int = 1024, faults: StoreFaults = StoreFaults(), logger: Logger, delivery: @escaping Delivery) {
        self.store = store
        self.maxPending = maxPending
        self.maxBatch = maxBatch
        self.faults = faults
        self.logger = logger
        self.delivery = delivery
    }

    /// Whether the store took the last commit. After a failure it stays false until a commit
    /// or a `probe` succeeds.
    public var isHealthy: Bool { healthy.load(ordering: .relaxed) }

    /// Tries an empty write transaction (through the fault seam, like a commit) and records
    /// whether the store took it. `/readyz` calls it while the store is unhealthy, so a node
    /// that no traffic reaches still finds out when its store is back.
    public func probe() async -> Bool {
        do {
            try await faults.beforeCommit()
            _ = try await store.commit([])
            healthy.store(true, ordering: .relaxed)
            return true
        } catch {
            healthy.store(false, ordering: .relaxed)
            return false
        }
    }

    /// Number of messages waiting for the store.
    public var pendingCount: Int { state.withLock { $0.queue.count } }

    /// Stores one message (with the next batch) and returns what the store did with it.
    ///
    /// Messages are queued, and so committed and given their inbox `seq`s, in increasing id
    /// order: that is what makes every inbox show a conversation in id order. A message whose
    /// id is not above the last one queued (its sender's pipeline was overtaken between the
    /// `id` stage and here) gets a fresh id from `ids` first.
    public func commit(_ pending: PendingMessage, ids: (any MessageIDSource)? = nil) async throws -> CommitOutcome {
        try await enqueue(pending, ids: ids).value()
    }

    /// Queues one message and returns at once; the ticket's `value()` waits for the commit.
    /// Tickets of one caller resolve in the order they were queued, which lets a session
    /// pipeline its sends and still answer them in order. Throws `unavailable` when the queue
    /// is full or closed.
    public func enqueue(_ pending: PendingMessage, ids: (any MessageIDSource)? = nil) throws(GatewayError) -> CommitTicket {
        let ticket = CommitTicket()
        do {
            enum Action { case none, flush, reject(GatewayError) }
            let action: Action = state.withLock { state in
                if state.closed { return .reject(.unavailable("the gateway is shutting down")) }
                if state.queue.count >= maxPending { return .reject(.unavailable("the store is behind; retry shortly", retryAfterMs: 200)) }
                var pending = pending
                if pending.message.id <= state.lastQueuedID, let ids {
                    pending = pending.with(id: ids.nextID(after: state.lastQueuedID))
                }
                state.lastQueuedID = max(state.lastQueuedID, pending.message.id)
                state.queue.append(pending)
                state.tickets.append(ticket)
                if state.flushing { return .none }
                state.flushing = true
                return .flush
            }
            switch action {
            case .none:
                break
            case .reject(let error):
                throw error
            case .flush:
                // One task per busy period, not per message: it drains everything queued meanwhile.
                Task { await self.flush() }
            }
        }
        return ticket
    }

    private func flush() async {
        while true {
            let (pending, tickets): ([PendingMessage], [CommitTicket]) = state.withLock { state in
                if state.queue.isEmpty {
                    state.flushing = false
                    let idle = state.idleWaiters
                    state.idleWaiters = []
                    for waiter in idle { waiter.resume() }
                    return ([], [])
                }
                if state.queue.count <= maxBatch {
                    defer {
                        state.queue = []
                        state.tickets = []
                    }
                    return (state.queue, state.tickets)
                }
                let head = (Array(state.queue.prefix(maxBatch)), Array(state.tickets.prefix(maxBatch)))
                state.queue.removeFirst(maxBatch)
                state.tickets.removeFirst(maxBatch)
                return head
            }
            if pending.isEmpty { return }
            do {
                try await faults.beforeCommit()
                let outcomes = try await store.commit(pending)
                guard outcomes.count == pending.count else {
                    throw GatewayError(.internal, "the store answered \(outcomes.count) outcomes for \(pending.count) messages")
                }
                healthy.store(true, ordering: .relaxed)
                delivery(pending, outcomes)
                for index in outcomes.indices {
                    pending[index].answer?(.success(outcomes[index]))
                    tickets[index].fulfill(.success(outcomes[index]))
                }
            } catch {
                healthy.store(false, ordering: .relaxed)
                let clientError = GatewayError.from(error)
                let answer: GatewayError = clientError.code == .internal ? .unavailable("the store failed; nothing was stored") : clientError
                logger.error("store commit failed", metadata: ["error": "\(error)", "gateway.batch": "\(pending.count)"])
                for index in pending.indices {
                    pending[index].answer?(.failure(answer))
                    tickets[index].fulfill(.failure(answer))
                }
            }
        }
    }

    /// Refuses new messages and waits until everything queued is committed.
    public func close() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let idle = state.withLock { state in
                state.closed = true
                if !state.flushing { return true }
                state.idleWaiters.append(continuation)
                return false
            }
            if idle { continuation.resume() }
        }
    }
}

/// The store fault seam of DESIGN.md: make the next commits fail (disk full, busy) or slow.
public final class StoreFaults: Sendable {
    struct State {
        var failures = 0
        var error = GatewayError.unavailable("disk full")
        var delayMs = 0
    }

    /// Guards the planned faults.
    private let state = Mutex(State())

    public init() {}

    /// The next `count` commits fail with `error` (nothing of those batches is stored).
    public func failNextCommits(_ count: Int, with error: GatewayError = .unavailable("disk full")) {
        state.withLock {
            $0.failures = count
            $0.error = error
        }
    }

    /// Every commit waits this long first (0 to stop).
    public func delayCommits(byMilliseconds ms: Int) {
        state.withLock { $0.delayMs = ms }
    }

    func beforeCommit() async throws {
        let (delay, failure): (Int, GatewayError?) = state.withLock { state in
            if state.failures > 0 {
                state.failures -= 1
                return (state.delayMs, state.error)
            }
            return (state.delayMs, nil)
        }
        if delay > 0 { try? await Task.sleep(for: .milliseconds(delay)) }
        if let failure { throw failure }
    }
}

/// Hands out message ids above a floor; the `id` stage is one. The committer uses it to keep
/// ids increasing in commit order.
public protocol MessageIDSource: Sendable {
    func nextID(after floor: UInt64) -> UInt64
}

/// The pending result of one queued message: fulfilled once by the flush, awaited once.
public final class CommitTicket: Sendable {
    struct State {
        var result: Result<CommitOutcome, GatewayError>?
        var waiter: CheckedContinuation<CommitOutcome, any Error>?
    }

    /// Guards the result and the waiting caller.
    private let state = Mutex(State())

    init() {}

    func fulfill(_ result: Result<CommitOutcome, GatewayError>) {
        let waiter: CheckedContinuation<CommitOutcome, any Error>? = state.withLock { state in
            guard let waiter = state.waiter else {
                state.result = result
                return nil
            }
            state.waiter = nil
            return waiter
        }
        waiter?.resume(with: result.mapError { $0 as any Error })
    }

    /// Waits for the commit: what the store did with the message, or why nothing was stored.
    public func value() async throws -> CommitOutcome {
        // Already committed (a pipelining session often finds it so): no suspension.
        if let ready = state.withLock({ $0.result }) { return try ready.get() }
        return try await withCheckedThrowingContinuation { continuation in
            let ready: Result<CommitOutcome, GatewayError>? = state.withLock { state in
                if let result = state.result { return result }
                state.waiter = continuation
                return nil
            }
            if let ready { continuation.resume(with: ready.mapError { $0 as any Error }) }
        }
    }
}
