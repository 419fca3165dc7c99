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
///
/// On a store that several nodes write (an `OrderedCommitStore`, PostgreSQL) a batch that would
/// put a smaller id after a larger one in an inbox is refused; the committer then re-stamps it
/// (and everything queued behind it) with fresh ids above the inbox's last one and commits
/// again, at most `maxOrderRetries` times. There, `commitsInFlight` above 1 keeps up to that
/// many batches in flight at once, on separate store connections, with no user in two of them:
/// a queued message one of whose users is in a batch in flight waits (and so does every later
/// message for its users) until that batch was delivered and answered. Each inbox then still
/// gets its entries, seqs and live deliveries in order, and no batch waits in the store on the
/// row locks of another of this node.
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
        /// The id source of the latest send: what re-stamps a batch refused for inbox order.
        var ids: (any MessageIDSource)?
        /// Batches in flight (with `commitsInFlight` above 1).
        var inFlight = 0
        /// The users of the batches in flight (each in at most one of them): a queued message
        /// for one of them waits until that batch was delivered and answered.
        var busyUsers: Set<String> = []
        /// Opened (and replaced) whenever a batch in flight ends: the driver waits on it for a
        /// free slot or for a waiting message's users to be free.
        var batchEnded = CommitGate()
    }

    /// Guards the queue of waiting messages and the flushing flag.
    private let state = Mutex(State())
    private let store: any MessageStore
    private let maxPending: Int
    private let maxBatch: Int
    private let delivery: Delivery
    private let logger: Logger
    /// The store as an `OrderedCommitStore` (nil for the embedded store).
    private let ordered: (any OrderedCommitStore)?
    /// Most batches in flight at once (1 unless the store is an `OrderedCommitStore`).
    public let commitsInFlight: Int
    /// How many times a batch refused for inbox order is re-stamped and committed again before
    /// its sends fail with `unavailable`.
    public let maxOrderRetries: Int
    /// The fault seam: tests make the next commits fail or slow.
    public let faults: StoreFaults
    /// Whether the last commit (or probe) succeeded: `/readyz` answers 503 while it did not.
    private let healthy = Atomic<Bool>(true)
    /// Batches the store refused for inbox order (each re-stamped and committed again, or failed).
    private let refusals = Atomic<Int>(0)

    public init(
        store: any MessageStore, maxPending: Int, maxBatch: Int = 1024, commitsInFlight: Int = 1, maxOrderRetries: Int = 5,
        faults: StoreFaults = StoreFaults(), logger: Logger, delivery: @escaping Delivery
    ) {
        self.store = store
        ordered = store as? any OrderedCommitStore
        self.commitsInFlight = ordered == nil ? 1 : max(1, commitsInFlight)
        self.maxOrderRetries = max(0, maxOrderRetries)
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

    /// How many times the store refused a batch for inbox order since start.
    public var orderRefusals: Int { refusals.load(ordering: .relaxed) }

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
                if let ids { state.ids = ids }
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
                if ordered != nil, commitsInFlight > 1 {
                    Task { await self.drive() }
                } else {
                    Task { await self.flush() }
                }
            }
        }
        return ticket
    }

    /// Takes the next batch off the queue (nil when it is empty: the busy period ends).
    private func takeBatch() -> (pending: [PendingMessage], tickets: [CommitTicket])? {
        let (taken, idle): ((pending: [PendingMessage], tickets: [CommitTicket])?, [CheckedContinuation<Void, Never>]) = state.withLock { state in
            if state.queue.isEmpty {
                state.flushing = false
                defer { state.idleWaiters = [] }
                return (nil, state.idleWaiters)
            }
            if state.queue.count <= maxBatch {
                defer {
                    state.queue = []
                    state.tickets = []
                }
                return ((state.queue, state.tickets), [])
            }
            let head = (Array(state.queue.prefix(maxBatch)), Array(state.tickets.prefix(maxBatch)))
            state.queue.removeFirst(maxBatch)
            state.tickets.removeFirst(maxBatch)
            return (head, [])
        }
        for waiter in idle { waiter.resume() }
        return taken
    }

    /// One batch at a time: commit, deliver, answer, next.
    private func flush() async {
        while let (pending, tickets) = takeBatch() {
            let (batch, result) = await commitBatch(pending)
            finish(batch, result, tickets: tickets)
        }
    }

    /// What the driver does next.
    private enum Step {
        case stop([CheckedContinuation<Void, Never>])
        case wait(CommitGate)
        case start(pending: [PendingMessage], tickets: [CommitTicket], users: Set<String>)
    }

    /// Up to `commitsInFlight` batches at a time (an `OrderedCommitStore`), no user in two of
    /// them: each takes, in queue order, the messages none of whose users is in a batch in
    /// flight or in an earlier message left waiting.
    private func drive() async {
        while true {
            let step: Step = state.withLock { state in
                if state.queue.isEmpty {
                    state.flushing = false
                    guard state.inFlight == 0 else { return .stop([]) }
                    defer { state.idleWaiters = [] }
                    return .stop(state.idleWaiters)
                }
                if state.inFlight >= commitsInFlight { return .wait(state.batchEnded) }
                var pending: [PendingMessage] = [], tickets: [CommitTicket] = []
                var users: Set<String> = []
                if state.inFlight == 0 && state.queue.count <= maxBatch {
                    // Nothing in flight: everything queued, as `flush` takes it.
                    swap(&pending, &state.queue)
                    swap(&tickets, &state.tickets)
                    for message in pending { Self.addUsers(of: message, to: &users) }
                } else {
                    var blocked = state.busyUsers
                    var waiting: [PendingMessage] = [], waitingTickets: [CommitTicket] = []
                    for (index, message) in state.queue.enumerated() {
                        if pending.count < maxBatch && !Self.touches(message, blocked) {
                            pending.append(message)
                            tickets.append(state.tickets[index])
                            Self.addUsers(of: message, to: &users)
                        } else {
                            waiting.append(message)
                            waitingTickets.append(state.tickets[index])
                            Self.addUsers(of: message, to: &blocked)
                        }
                    }
                    if pending.isEmpty { return .wait(state.batchEnded) }
                    state.queue = waiting
                    state.tickets = waitingTickets
                }
                state.inFlight += 1
                state.busyUsers.formUnion(users)
                return .start(pending: pending, tickets: tickets, users: users)
            }
            switch step {
            case .stop(let idle):
                for waiter in idle { waiter.resume() }
                return
            case .wait(let gate):
                await gate.wait()
            case .start(let pending, let tickets, let users):
                Task {
                    let (batch, result) = await commitBatch(pending)
                    finish(batch, result, tickets: tickets)
                    let (ended, idle): (CommitGate, [CheckedContinuation<Void, Never>]) = state.withLock { state in
                        state.inFlight -= 1
                        state.busyUsers.subtract(users)
                        let ended = state.batchEnded
                        state.batchEnded = CommitGate()
                        guard !state.flushing, state.inFlight == 0 else { return (ended, []) }
                        defer { state.idleWaiters = [] }
                        return (ended, state.idleWaiters)
                    }
                    ended.open()
                    for waiter in idle { waiter.resume() }
                }
            }
        }
    }

    /// Adds the users whose inboxes or live sessions `message` reaches (its sender included).
    private static func addUsers(of message: PendingMessage, to users: inout Set<String>) {
        users.insert(message.message.from)
        for user in message.inboxes { users.insert(user) }
        for user in message.liveOnly { users.insert(user) }
    }

    /// Whether `message` reaches one of `users`.
    private static func touches(_ message: PendingMessage, _ users: Set<String>) -> Bool {
        if users.isEmpty { return false }
        if users.contains(message.message.from) { return true }
        return message.inboxes.contains(where: users.contains) || message.liveOnly.contains(where: users.contains)
    }

    /// Commits one batch (through the fault seam): what was committed (the batch, re-stamped
    /// after an inbox order refusal) and the outcomes or the failure.
    private func commitBatch(_ pending: [PendingMessage]) async -> (batch: [PendingMessage], result: Result<[CommitOutcome], any Error>) {
        do {
            try await faults.beforeCommit()
            guard let ordered else { return (pending, .success(try await store.commit(pending))) }
            var restamp: (@Sendable (UInt64) -> [PendingMessage])?
            var retries = 0
            while true {
                do {
                    let (batch, outcomes) = try await ordered.commitInOrder(pending, restamp: restamp)
                    return (batch, .success(outcomes))
                } catch let conflict as InboxOrderConflict {
                    retries += 1
                    refusals.add(1, ordering: .relaxed)
                    guard state.withLock({ $0.ids != nil }) else {
                        throw GatewayError.unavailable("an inbox already holds a later message and no id stage can re-stamp this one")
                    }
                    guard retries <= maxOrderRetries else {
                        throw GatewayError.unavailable("other nodes keep committing later messages to these inboxes; retry shortly", retryAfterMs: 200)
                    }
                    logger.debug("batch refused for inbox order; re-stamping", metadata: ["gateway.batch": "\(pending.count)", "gateway.floor": "\(conflict.floor)"])
                    restamp = { [self] floor in self.restamp(pending, above: max(floor, conflict.floor)) }
                }
            }
        } catch {
            return (pending, .failure(error))
        }
    }

    /// `batch` with fresh ids above `floor` (and above every id queued so far), in order; the
    /// messages still queued get fresh ids after them, so that a later message for the same
    /// inbox still gets a later id.
    private func restamp(_ batch: [PendingMessage], above floor: UInt64) -> [PendingMessage] {
        state.withLock { state in
            guard let ids = state.ids else { return batch }
            var last = max(floor, state.lastQueuedID)
            let restamped = batch.map { pending in
                last = ids.nextID(after: last)
                return pending.with(id: last)
            }
            for index in state.queue.indices {
                last = ids.nextID(after: last)
                state.queue[index] = state.queue[index].with(id: last)
            }
            state.lastQueuedID = last
            return restamped
        }
    }

    /// Delivers and answers a committed batch, or answers its failure.
    private func finish(_ batch: [PendingMessage], _ result: Result<[CommitOutcome], any Error>, tickets: [CommitTicket]) {
        do {
            let outcomes = try result.get()
            guard outcomes.count == batch.count else {
                throw GatewayError(.internal, "the store answered \(outcomes.count) outcomes for \(batch.count) messages")
            }
            healthy.store(true, ordering: .relaxed)
            delivery(batch, outcomes)
            for index in outcomes.indices {
                batch[index].answer?(.success(outcomes[index]))
                tickets[index].fulfill(.success(outcomes[index]))
            }
        } catch {
            healthy.store(false, ordering: .relaxed)
            let clientError = GatewayError.from(error)
            let answer: GatewayError = clientError.code == .internal ? .unavailable("the store failed; nothing was stored") : clientError
            logger.error("store commit failed", metadata: ["error": "\(error)", "gateway.batch": "\(batch.count)"])
            for index in batch.indices {
                batch[index].answer?(.failure(answer))
                tickets[index].fulfill(.failure(answer))
            }
        }
    }

    /// Refuses new messages and waits until everything queued is committed.
    public func close() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let idle = state.withLock { state in
                state.closed = true
                if !state.flushing && state.inFlight == 0 { return true }
                state.idleWaiters.append(continuation)
                return false
            }
            if idle { continuation.resume() }
        }
    }
}

/// A one-shot event tasks wait for.
final class CommitGate: Sendable {
    /// Guards whether it opened and who waits.
    private let state = Mutex<(open: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))

    var isOpen: Bool { state.withLock { $0.open } }

    /// Opens the gate (again: nothing) and resumes the waiters.
    func open() {
        let waiters: [CheckedContinuation<Void, Never>] = state.withLock { state in
            if state.open { return [] }
            state.open = true
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Returns once the gate is open.
    func wait() async {
        if isOpen { return }
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let ready: Bool = state.withLock { state in
                if state.open { return true }
                state.waiters.append(continuation)
                return false
            }
            if ready { continuation.resume() }
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
