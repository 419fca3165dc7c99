import Foundation
import GRDB
import GatewayCore
import Logging
import Synchronization

/// The embedded backend: messages, inboxes and groups in one SQLite file (WAL), through GRDB.
///
/// ```swift
/// let store = try EmbeddedStore(path: "data/chat.db", durability: .full, logger: logger)
/// let outcomes = try await store.commit(batch)
/// ```
///
/// Writes go through one `DatabasePool` writer connection, so concurrent `commit` calls run one
/// after the other; each is one transaction, hence one fsync with `.full` durability. Reads run
/// on the pool's reader connections and do not wait for writes.
///
/// `EmbeddedStore` is `Sendable`: its only mutable state, the closed flag, is in a `Mutex`.
public final class EmbeddedStore: MessageStore, GroupStore, Sendable {
    /// The database. Internal so that tests can inspect pragmas and inject faults.
    let pool: DatabasePool
    let path: String
    let logger: Logger?
    /// Most fanout-on-read messages one materialization transaction takes (docs/GROUPS.md).
    let materializationChunk: Int
    /// Committed inbox heads of recently active users (see `HeadCache`).
    let headCache = HeadCache()
    /// Members of recently used groups (see `GroupMembersCache`).
    let membersCache = GroupMembersCache()
    /// Checkpoints the WAL off the commit path.
    let checkpointer: BackgroundCheckpointer
    /// Guards whether `close()` has run; later calls fail with `unavailable`.
    private let closed = Mutex(false)

    /// Opens (creating when missing) the store at `path` and brings its schema up to date.
    ///
    /// - Parameters:
    ///   - path: The SQLite file. Its parent directory is created when missing.
    ///   - durability: `.full` syncs the WAL on every commit (`synchronous=FULL`: survives power
    ///     loss); `.relaxed` syncs only at checkpoints (`synchronous=NORMAL`: survives a process
    ///     crash, not power loss).
    ///   - logger: Where the store logs opening and closing, at debug level.
    /// - Throws: When the directory or the file cannot be created or opened, or the file is not
    ///   a database of this schema.
    public convenience init(path: String, durability: StoreSettings.Durability, logger: Logger? = nil) throws {
        try self.init(path: path, durability: durability, busyTimeout: 5, logger: logger)
    }

    /// As the public initializer, with how long a write waits for another process's lock
    /// before failing with `unavailable` (tests shorten it).
    init(
        path: String, durability: StoreSettings.Durability, busyTimeout: TimeInterval, logger: Logger?,
        materializationChunk: Int = 10_000
    ) throws {
        let directory = URL(fileURLWithPath: path).deletingLastPathComponent().path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)

        var configuration = Configuration()
        configuration.busyMode = .timeout(busyTimeout)
        configuration.foreignKeysEnabled = true
        configuration.label = "chatgate.store"
        configuration.prepareDatabase { db in
            // Keeps the WAL file from staying at its peak size after a burst of writes.
            try db.execute(sql: "PRAGMA journal_size_limit = 67108864")
            // For a new file only (an existing one keeps its page size). A commit writes every
            // page it touched to the WAL, and a batch touches one leaf per inbox, per
            // conversation and per sender: small pages write a quarter of the bytes for the
            // same rows (measured: 9.3 KB of file writes per 1:1 message with 4 KiB pages).
            try db.execute(sql: "PRAGMA page_size = \(Self.pageSize)")
        }
        let pool = try DatabasePool(path: path, configuration: configuration)
        // GRDB sets `synchronous=NORMAL` on the writer when it enables WAL, after
        // `prepareDatabase` has run: set the level afterwards, on the writer connection (the
        // pragma is per connection, and the writer is the only one that commits).
        let level = durability == .full ? "FULL" : "NORMAL"
        try pool.writeWithoutTransaction { db in
            try db.execute(sql: "PRAGMA synchronous = \(level)")
            // The writer's page cache (SQLite's default is 2 MB): the inbox and message b-trees'
            // upper levels stay in memory, so commits do not re-read them from the file.
            try db.execute(sql: "PRAGMA cache_size = -32768")
            // `BackgroundCheckpointer` checkpoints off the commit path; the writer's automatic
            // checkpoint is the safety net, at 32 MB of WAL rather than SQLite's 1,000 pages.
            try db.execute(sql: "PRAGMA wal_autocheckpoint = \(Self.checkpointPages)")
        }
        try Self.migrator.migrate(pool)

        self.checkpointer = try BackgroundCheckpointer(path: path)
        checkpointer.start(every: .milliseconds(Self.checkpointIntervalMs))
        self.pool = pool
        self.path = path
        self.logger = logger
        self.materializationChunk = max(1, materializationChunk)
        logger?.debug("store opened", metadata: ["gateway.store.path": "\(path)", "gateway.store.durability": "\(durability.rawValue)"])
    }

    // MARK: MessageStore

    public func commit(_ batch: [PendingMessage]) async throws -> [CommitOutcome] {
        if batch.isEmpty { return [] }
        let chunk = materializationChunk
        let cache = headCache
        let checkpointer = self.checkpointer
        return try await writeWithoutTransaction { db in
            var heads = HeadCounter(cache: cache)
            var outcomes: [CommitOutcome] = []
            try db.inTransaction(.immediate) {
                outcomes = try Self.commit(batch, chunk: chunk, heads: &heads, in: db)
                return .commit
            }
            // Committed: still on the writer, before any other write can move a head.
            cache.merge(heads.committed)
            checkpointer.noteCommit()
            return outcomes
        }
    }

    /// As the protocol says; first gives `user` the fanout-on-read messages waiting for them, at
    /// least as far as this page and the one entry after it (which tells `more`).
    public func inbox(user: String, after: Int64, limit: Int) async throws -> (entries: [InboxEntry], more: Bool) {
        let limit = max(limit, 0)
        let (sum, overflow) = after.addingReportingOverflow(Int64(clamping: limit))
        try await materializeWaiting(user: user, through: overflow || sum == Int64.max ? nil : sum + 1)
        return try await read { db in
            let statement = try db.cachedStatement(sql: """
                SELECT i.seq, \(Self.messageColumns)
                FROM inbox i JOIN messages m ON m.id = i.message_id
                WHERE i.user = ? AND i.seq > ?
                ORDER BY i.seq
                LIMIT ?
                """)
            var entries: [InboxEntry] = []
            let rows = try Row.fetchCursor(statement, arguments: [user, after, Self.fetchLimit(limit)])
            while let row = try rows.next() {
                if entries.count == limit { return (entries, true) }
                entries.append(InboxEntry(seq: try row.decode(atIndex: 0), message: try Self.message(row, at: 1)))
            }
            return (entries, false)
        }
    }

    /// As the protocol says; first gives `user` every fanout-on-read message waiting for them
    /// (in transactions of at most `materializationChunk` messages), so the head is exact.
    public func inboxHead(user: String) async throws -> Int64 {
        try await materializeWaiting(user: user, through: nil)
        return try await read { db in
            let statement = try db.cachedStatement(sql: "SELECT seq FROM inbox_heads WHERE user = ?")
            return try Int64.fetchOne(statement, arguments: [user]) ?? 0
        }
    }

    public func history(conversation: String, before: UInt64?, limit: Int) async throws -> (messages: [StoredMessage], more: Bool) {
        let limit = max(limit, 0)
        // Ids are below 2^63; a larger bound excludes nothing.
        let bound: Int64? = before.flatMap { $0 <= UInt64(Int64.max) ? Int64($0) : nil }
        return try await read { db in
            let statement = try db.cachedStatement(sql: """
                SELECT \(Self.messageColumns) FROM messages m
                WHERE m.conversation = ? AND m.id < ?
                ORDER BY m.id DESC
                LIMIT ?
                """)
            var messages: [StoredMessage] = []
            let rows = try Row.fetchCursor(statement, arguments: [conversation, bound ?? Int64.max, Self.fetchLimit(limit)])
            while let row = try rows.next() {
                if messages.count == limit { return (messages, true) }
                messages.append(try Self.message(row, at: 0))
            }
            // `id < Int64.max` leaves out an id of exactly 2^63-1, which no Snowflake reaches.
            return (messages, false)
        }
    }

    public func message(from sender: String, clientMsgID: String) async throws -> StoredMessage? {
        try await read { db in try Self.original(sender: sender, clientMsgID: clientMsgID, in: db)?.message }
    }

    public func lastMessageID() async throws -> UInt64? {
        try await read { db in
            // `max` of the rowid is one B-tree descent, not a scan.
            try Int64.fetchOne(db, sql: "SELECT max(id) FROM messages").map { UInt64(bitPattern: $0) }
        }
    }

    public func statistics() async throws -> StoreStatistics {
        let (messages, inboxEntries, databaseBytes) = try await read { db in
            let counts = try Row.fetchOne(db, sql: "SELECT messages, inbox_entries FROM counters WHERE id = 1")
            let pages = try Int.fetchOne(db, sql: "PRAGMA page_count") ?? 0
            let pageSize = try Int.fetchOne(db, sql: "PRAGMA page_size") ?? 0
            let messages: Int = try counts?.decode(atIndex: 0) ?? 0
            let inboxEntries: Int = try counts?.decode(atIndex: 1) ?? 0
            return (messages, inboxEntries, pages * pageSize)
        }
        let walAttributes = try? FileManager.default.attributesOfItem(atPath: path + "-wal")
        let walBytes = (walAttributes?[.size] as? NSNumber)?.intValue ?? 0
        return StoreStatistics(messages: messages, inboxEntries: inboxEntries, bytes: databaseBytes + walBytes)
    }

    /// Closes every connection (the last one checkpoints the WAL into the database file).
    /// Later calls of the other methods throw `unavailable`; closing again does nothing.
    public func close() async throws {
        let alreadyClosed = closed.withLock { closed in
            defer { closed = true }
            return closed
        }
        if alreadyClosed { return }
        await checkpointer.stop()
        do {
            try pool.close()
        } catch {
            // GRDB leaves the pool fully open when it cannot close it: keep serving.
            closed.withLock { $0 = false }
            throw Self.storeError(error)
        }
        logger?.debug("store closed", metadata: ["gateway.store.path": "\(path)"])
    }

    // MARK: Access

    /// The page size of a new database file.
    static let pageSize = 1024
    /// WAL frames (pages) after which a commit checkpoints itself: 32 MB with 1 KiB pages
    /// (normally the background checkpoint keeps the WAL far below).
    static let checkpointPages = 32_768
    /// How often the background checkpoint runs (when something was committed).
    static let checkpointIntervalMs = 200

    /// Runs `body` in one write transaction; SQLite failures become `unavailable` where the
    /// client should retry.
    func write<T: Sendable>(_ body: @Sendable (Database) throws -> T) async throws -> T {
        try await access { try await pool.write(body) }
    }

    /// Runs `body` on the writer outside a transaction (it opens its own); failures map as
    /// `write`'s do.
    func writeWithoutTransaction<T: Sendable>(_ body: @Sendable (Database) throws -> T) async throws -> T {
        try await access { try await pool.writeWithoutTransaction(body) }
    }

    /// Runs `body` on a reader connection, in a snapshot of the last commit.
    func read<T: Sendable>(_ body: @Sendable (Database) throws -> T) async throws -> T {
        try await access { try await pool.read(body) }
    }

    /// Runs one access of the pool if the store is open, mapping SQLite's failures to the
    /// gateway's errors.
    private func access<T: Sendable>(_ operation: () async throws -> T) async throws -> T {
        try checkOpen()
        do {
            return try await operation()
        } catch {
            throw Self.storeError(error)
        }
    }

    private func checkOpen() throws {
        if closed.withLock({ $0 }) { throw GatewayError.unavailable("the store is closed") }
    }

    /// `LIMIT` for a page of `limit` items: one more, which tells whether there are more.
    static func fetchLimit(_ limit: Int) -> Int64 {
        Int64(limit) == Int64.max ? Int64.max : Int64(limit) + 1
    }
}
