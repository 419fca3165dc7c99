/// A notification to add to the push queue: one message for one target.
public struct PushQueueItem: Sendable, Hashable {
    public var user: String
    public var targetID: String
    /// Notifications of one target with the same key collapse (the conversation key).
    public var collapseKey: String
    /// When to send, in milliseconds since the Unix epoch.
    public var due: Int64
    /// The recipient's inbox seq of the message (0 when it has none yet: fanout-on-read).
    public var seq: Int64
    public var messageID: UInt64
    /// The message's entry of the notification's `messages` list, as JSON text.
    public var entry: [UInt8]
    /// The message body as JSON text, only with `include_body`.
    public var body: [UInt8]?

    public init(user: String, targetID: String, collapseKey: String, due: Int64, seq: Int64, messageID: UInt64, entry: [UInt8], body: [UInt8]?) {
        self.user = user
        self.targetID = targetID
        self.collapseKey = collapseKey
        self.due = due
        self.seq = seq
        self.messageID = messageID
        self.entry = entry
        self.body = body
    }
}

/// A queued notification: one or more messages of one conversation for one target.
public struct PushJob: Sendable, Hashable {
    public var id: Int64
    public var user: String
    public var targetID: String
    public var collapseKey: String
    public var due: Int64
    /// Failed sends so far.
    public var attempts: Int
    /// Messages the notification covers (may exceed the entries listed).
    public var count: Int
    /// The highest inbox seq among them (0 when none had one).
    public var maxSeq: Int64
    public var maxMessageID: UInt64
    /// The `messages` list as JSON array text.
    public var messages: [UInt8]
    /// The newest message's body as JSON text, only with `include_body`.
    public var body: [UInt8]?

    public init(
        id: Int64, user: String, targetID: String, collapseKey: String, due: Int64, attempts: Int, count: Int, maxSeq: Int64,
        maxMessageID: UInt64, messages: [UInt8], body: [UInt8]?
    ) {
        self.id = id
        self.user = user
        self.targetID = targetID
        self.collapseKey = collapseKey
        self.due = due
        self.attempts = attempts
        self.count = count
        self.maxSeq = maxSeq
        self.maxMessageID = maxMessageID
        self.messages = messages
        self.body = body
    }
}

/// What a device confirmed: every message up to an inbox seq (`delivered`), or a
/// conversation up to a message id (`read`).
public enum PushConfirmation: Sendable, Hashable {
    case delivered(upToSeq: Int64)
    case read(conversation: String, upTo: UInt64)
}

/// The durable queue of push notifications: a restart or a kill -9 loses none.
///
/// Implementations: `SQLiteStore` (tables `push_jobs`, `push_windows`), `InMemoryStore`, and
/// the PostgreSQL backend. A job is *claimed* by a worker for a lease: `claimDue` hands each
/// due job to one worker only (in PostgreSQL, `SELECT ... FOR UPDATE SKIP LOCKED` then an
/// `UPDATE` of `claimed_until`); a worker that dies leaves the lease to expire, and the job
/// becomes due again. Claimed jobs are neither merged into nor cancelled.
///
/// ```swift
/// for job in try await queue.claimDue(now: now, limit: 8, leaseMs: 60_000) {
///     try await send(job) ? queue.complete(job.id) : queue.reschedule(job.id, due: later, attempts: job.attempts + 1)
/// }
/// ```
public protocol PushQueue: Sendable {
    /// Queues `items` in one transaction, each as follows. When an unclaimed job of the same
    /// (target, collapse key) waits, the message joins it: count + 1, its entry appended while
    /// the list holds fewer than `maxListed`, the earlier due time kept (but never earlier than
    /// the collapse window the job was created in). Otherwise a new job is due at `item.due`, or
    /// at the end of the target's collapse window for that key when one is open (a notification
    /// of the key was queued less than `collapseMs` before); the window then runs `collapseMs`
    /// from the new job's due time. An item whose target no longer exists is skipped.
    func enqueue(_ items: [PushQueueItem], collapseMs: Int64, maxListed: Int) async throws

    /// Claims up to `limit` jobs due at `now` that no lease holds, earliest first, for `leaseMs`.
    func claimDue(now: Int64, limit: Int, leaseMs: Int64) async throws -> [PushJob]

    /// Removes a job that was sent (or given up).
    func complete(_ id: Int64) async throws

    /// Releases a claimed job to be tried again at `due`.
    func reschedule(_ id: Int64, due: Int64, attempts: Int) async throws

    /// Removes the user's unclaimed jobs the confirmation covers (a `delivered` seq at or past
    /// the job's highest seq; a `read` of the job's conversation at or past its newest message).
    /// Returns how many were removed.
    func cancel(user: String, confirmation: PushConfirmation, now: Int64) async throws -> Int

    /// The earliest time a queued job can be claimed (its due time, or the end of its lease if
    /// later), if any: a worker sleeps until then.
    func nextDue() async throws -> Int64?

    /// Jobs queued (claimed or not).
    func queuedCount() async throws -> Int
}
