import GatewayCore
import Logging
import NIOCore
import PostgresNIO
import Synchronization

/// The PostgreSQL backend: messages, inboxes, groups and read positions in one PostgreSQL
/// database that every node of a cluster shares, through postgres-nio's `PostgresClient` pool.
///
/// ```swift
/// let store = try await PostgresStore.open(
///     PostgresStoreConfiguration(url: "postgres://chat@db:5432/chat", poolSize: 16), logger: logger)
/// let outcomes = try await store.commit(batch)   // one statement, one round trip, one transaction
/// try await store.close()
/// ```
///
/// `open` runs the pool (its `run()` in a task the store owns until `close`) and applies the
/// schema migrations (see `migrate`). A commit batch is one call of the `chat_commit` function:
/// one round trip, one transaction, multi-row writes; it returns after PostgreSQL's `COMMIT`
/// (with `synchronous_commit=on` for `.full` durability, after the WAL flush). Failures of the
/// connection or the server that a retry can get through become `GatewayError.unavailable`.
public final class PostgresStore: MessageStore, GroupStore, ReceiptStore, Sendable {
    let client: PostgresClient
    let logger: Logger
    let configuration: PostgresStoreConfiguration
    /// The task running the pool; cancelled by `close()`.
    private let runner: Task<Void, Never>
    /// Whether `close()` has run; later calls fail with `unavailable`.
    private let closed = Mutex(false)

    private init(configuration: PostgresStoreConfiguration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
        let client = PostgresClient(configuration: configuration.client, backgroundLogger: logger)
        self.client = client
        runner = Task { await client.run() }
    }

    /// Connects, brings the schema up to date and returns the open store.
    ///
    /// - Throws: `unavailable` when PostgreSQL cannot be reached; a migration's error as is.
    public static func open(_ configuration: PostgresStoreConfiguration, logger: Logger = Logger(label: "chatgate.store")) async throws
        -> PostgresStore
    {
        let store = PostgresStore(configuration: configuration, logger: logger)
        do {
            // Reachable at all (fails within `requestTimeout`), then the migrations (which may
            // wait for another node's).
            try await store.access { [client = store.client] in for try await _ in try await client.query("SELECT 1", logger: logger) {} }
            try await store.access(timeout: .seconds(120)) { [client = store.client] in try await migrate(client, logger: logger) }
        } catch {
            try? await store.close()
            throw error
        }
        logger.debug(
            "store opened",
            metadata: ["gateway.store.host": "\(configuration.host):\(configuration.port)", "gateway.store.database": "\(configuration.database)"])
        return store
    }

    // MARK: MessageStore

    public func commit(_ batch: [PendingMessage]) async throws -> [CommitOutcome] {
        if batch.isEmpty { return [] }
        let arguments = CommitArguments(batch)
        let rows = try await access { [client, logger] in
            try await arguments.run(on: client, checkOrder: false, logger: logger)
        }
        return try await outcomes(of: batch, rows)
    }

    /// The outcome of each message of `batch` from what `chat_commit` answered: its seqs when
    /// stored, the original when a duplicate.
    func outcomes(of batch: [PendingMessage], _ rows: CommitRows) async throws -> [CommitOutcome] {
        var duplicates: [(sender: String, clientMsgID: String)] = []
        for (index, pending) in batch.enumerated() where !rows.stored[index] {
            duplicates.append((pending.message.from, pending.message.clientMsgID))
        }
        let originals = try await originals(of: duplicates)
        return try batch.enumerated().map { index, pending in
            if rows.stored[index] {
                let order = pending.inboxes
                return .stored(pending.message, seqs: order.compactMap { user in rows.seqs[index][user].map { InboxSeq(user: user, seq: $0) } })
            }
            let key = DedupeKey(sender: pending.message.from, clientMsgID: pending.message.clientMsgID)
            guard let original = originals[key] else {
                throw GatewayError(.internal, "message \(pending.message.id) was neither stored nor a duplicate")
            }
            return .duplicate(original.message, senderSeq: original.senderSeq)
        }
    }

    struct DedupeKey: Hashable {
        let sender: String
        let clientMsgID: String
    }

    /// The stored messages of these (sender, client_msg_id) keys, with their senders' seqs: the
    /// message's entry in its sender's inbox (searched from the newest: a duplicate is most
    /// often a resend of a recent message), or `sender_seq` for rows committed before v62.
    func originals(of keys: [(sender: String, clientMsgID: String)]) async throws -> [DedupeKey: (message: StoredMessage, senderSeq: Int64)] {
        if keys.isEmpty { return [:] }
        let senders = keys.map(\.sender)
        let clientMsgIDs = keys.map(\.clientMsgID)
        return try await access { [self] in
            let rows = try await client.query(
                """
                SELECT \(unescaped: Self.messageColumns),
                    CASE WHEN m.sender_seq > 0 THEN m.sender_seq ELSE coalesce(
                        (SELECT i.seq FROM inbox i WHERE i.user_id = m.sender AND i.message_id = m.id ORDER BY i.seq DESC LIMIT 1), 0)
                    END
                FROM messages m JOIN unnest(\(senders), \(clientMsgIDs)) AS k(sender, client_msg_id)
                    ON m.sender = k.sender AND m.client_msg_id = k.client_msg_id
                """, logger: logger)
            var found: [DedupeKey: (message: StoredMessage, senderSeq: Int64)] = [:]
            for try await row in rows {
                let message = try Self.message(row)
                let senderSeq = try Self.column(row, 8, as: Int64.self)
                found[DedupeKey(sender: message.from, clientMsgID: message.clientMsgID)] = (message, senderSeq)
            }
            return found
        }
    }

    public func inbox(user: String, after: Int64, limit: Int) async throws -> (entries: [InboxEntry], more: Bool) {
        let limit = max(limit, 0)
        let fetch = Self.fetchLimit(limit)
        return try await access { [self] in
            let rows = try await client.query(
                """
                SELECT \(unescaped: Self.messageColumns), i.seq
                FROM inbox i JOIN messages m ON m.id = i.message_id
                WHERE i.user_id = \(user) AND i.seq > \(after)
                ORDER BY i.seq
                LIMIT \(fetch)
                """, logger: logger)
            var entries: [InboxEntry] = []
            var more = false
            for try await row in rows {
                if entries.count == limit {
                    more = true
                    continue
                }
                let seq = try Self.column(row, 8, as: Int64.self)
                entries.append(InboxEntry(seq: seq, message: try Self.message(row)))
            }
            return (entries, more)
        }
    }

    public func inboxHead(user: String) async throws -> Int64 {
        try await access { [self] in
            let rows = try await client.query("SELECT seq FROM inbox_heads WHERE user_id = \(user)", logger: logger)
            for try await seq in rows.decode(Int64.self) { return seq }
            return 0
        }
    }

    public func history(conversation: String, before: UInt64?, limit: Int) async throws -> (messages: [StoredMessage], more: Bool) {
        let limit = max(limit, 0)
        let fetch = Self.fetchLimit(limit)
        // Ids are below 2^63; a larger bound excludes nothing.
        let bound: Int64 = before.flatMap { $0 <= UInt64(Int64.max) ? Int64($0) : nil } ?? Int64.max
        return try await access { [self] in
            let rows = try await client.query(
                """
                SELECT \(unescaped: Self.messageColumns) FROM messages m
                WHERE m.conversation = \(conversation) AND m.id < \(bound)
                ORDER BY m.id DESC
                LIMIT \(fetch)
                """, logger: logger)
            var messages: [StoredMessage] = []
            var more = false
            for try await row in rows {
                if messages.count == limit {
                    more = true
                    continue
                }
                messages.append(try Self.message(row))
            }
            return (messages, more)
        }
    }

    public func message(from sender: String, clientMsgID: String) async throws -> StoredMessage? {
        try await originals(of: [(sender, clientMsgID)]).values.first?.message
    }

    public func lastMessageID() async throws -> UInt64? {
        try await access { [self] in
            let rows = try await client.query("SELECT max(id) FROM messages", logger: logger)
            for try await id in rows.decode(Int64?.self) { return id.map { UInt64(bitPattern: $0) } }
            return nil
        }
    }

    public func statistics() async throws -> StoreStatistics {
        try await access { [self] in
            let rows = try await client.query(
                """
                SELECT coalesce(sum(messages), 0)::bigint, coalesce(sum(inbox_entries), 0)::bigint, pg_database_size(current_database())
                FROM counters
                """, logger: logger)
            for try await (messages, entries, bytes) in rows.decode((Int64, Int64, Int64).self) {
                return StoreStatistics(messages: Int(messages), inboxEntries: Int(entries), bytes: Int(bytes))
            }
            return StoreStatistics(messages: 0, inboxEntries: 0, bytes: 0)
        }
    }

    /// Stops the pool (open connections close). Later calls of the other methods throw
    /// `unavailable`; closing again does nothing.
    public func close() async throws {
        let alreadyClosed = closed.withLock { closed in
            defer { closed = true }
            return closed
        }
        if alreadyClosed { return }
        runner.cancel()
        await runner.value
        logger.debug("store closed", metadata: ["gateway.store.database": "\(configuration.database)"])
    }

    // MARK: Access

    /// `messages.to_kind` values.
    enum RecipientKind: Int16 {
        case user = 0
        case group = 1
    }

    /// Columns of `messages m` that `message(_:)` decodes, in its order.
    static let messageColumns = "m.id, m.sender, m.to_kind, m.to_id, m.client_msg_id, m.ts, m.body, m.attachments"

    /// Decodes the `messageColumns` at the start of `row`.
    static func message(_ row: PostgresRow) throws -> StoredMessage {
        var columns = row.makeIterator()
        func next<T: PostgresDecodable>(_ type: T.Type) throws -> T {
            guard let cell = columns.next() else { throw GatewayError(.internal, "store row has too few columns") }
            return try cell.decode(T.self)
        }
        let id = try next(Int64.self)
        let sender = try next(String.self)
        let kind = try next(Int16.self)
        let recipient = try next(String.self)
        let clientMsgID = try next(String.self)
        let timestamp = try next(Int64.self)
        let body = try next(ByteBuffer.self)
        let attachments = try next(ByteBuffer?.self)
        let to: Address
        switch RecipientKind(rawValue: kind) {
        case .user: to = .user(recipient)
        case .group: to = .group(recipient)
        case nil: throw GatewayError(.internal, "message \(id) has unknown to_kind \(kind)")
        }
        return StoredMessage(
            id: UInt64(bitPattern: id), from: sender, to: to, timestamp: timestamp, clientMsgID: clientMsgID,
            body: Array(buffer: body), attachments: attachments.map { Array(buffer: $0) })
    }

    /// Column `index` of `row`.
    static func column<T: PostgresDecodable>(_ row: PostgresRow, _ index: Int, as type: T.Type) throws -> T {
        try row.makeRandomAccess()[index].decode(T.self)
    }

    /// `LIMIT` for a page of `limit` items: one more, which tells whether there are more.
    static func fetchLimit(_ limit: Int) -> Int64 {
        Int64(limit) == Int64.max ? Int64.max : Int64(limit) + 1
    }

    /// Runs one access if the store is open, mapping PostgreSQL's failures to the gateway's
    /// errors (see `storeError`).
    ///
    /// An access that gets no answer within `configuration.requestTimeout` (PostgreSQL
    /// unreachable: the pool would otherwise keep the request waiting while it retries to
    /// connect) is cancelled and fails with `unavailable`. A commit cut short that way may still
    /// have committed; the client's resend is then answered by dedupe.
    func access<T: Sendable>(timeout: Duration? = nil, _ operation: @escaping @Sendable () async throws -> T) async throws -> T {
        if closed.withLock({ $0 }) { throw GatewayError.unavailable("the store is closed") }
        do {
            return try await Self.withTimeout(timeout ?? configuration.requestTimeout, operation)
        } catch {
            throw Self.storeError(error)
        }
    }

    private enum Race<T: Sendable>: Sendable {
        case done(T)
        case timedOut
    }

    /// `operation`'s result, or `unavailable` once `timeout` passed (the operation is cancelled).
    static func withTimeout<T: Sendable>(_ timeout: Duration, _ operation: @escaping @Sendable () async throws -> T) async throws -> T {
        try await withThrowingTaskGroup(of: Race<T>.self) { group in
            group.addTask { .done(try await operation()) }
            group.addTask {
                try await Task.sleep(for: timeout)
                return .timedOut
            }
            defer { group.cancelAll() }
            guard case .done(let value)? = try await group.next() else {
                throw GatewayError.unavailable("store unavailable: PostgreSQL did not answer within \(timeout)")
            }
            return value
        }
    }

    /// What a failure means to the client: conditions a retry can get through (no connection,
    /// the server shutting down or out of resources, a deadlock or serialization failure)
    /// become `unavailable`; anything else (a constraint violated by a bug) is rethrown and
    /// reaches the client as `internal`.
    static func storeError(_ error: any Error) -> any Error {
        if error is GatewayError || error is InboxOrderConflict { return error }
        if let transaction = error as? PostgresTransactionError {
            // The closure's own error (a `conflict`, `not_found`) is the answer; otherwise the
            // first failure of BEGIN, COMMIT or ROLLBACK.
            if let inner = transaction.closureError ?? transaction.beginError ?? transaction.commitError ?? transaction.rollbackError {
                return storeError(inner)
            }
        }
        guard let error = error as? PSQLError else {
            // The pool's own failures (no connection could be opened, the pool shut down).
            return GatewayError.unavailable("store unavailable: \(String(describing: error).prefix(200))")
        }
        if let conflict = orderConflict(error) { return conflict }
        if error.code == .server {
            let state = error.serverInfo?[.sqlState] ?? ""
            // 08 connection, 40 transaction rollback (deadlock, serialization), 53 resources,
            // 57 operator intervention (shutdown), 58 system error.
            if ["08", "40", "53", "57", "58"].contains(where: { state.hasPrefix($0) }) {
                let message = error.serverInfo?[.message] ?? ""
                return GatewayError.unavailable("store unavailable: \(message) (PostgreSQL \(state))")
            }
            return error
        }
        return GatewayError.unavailable("store unavailable: PostgreSQL \(error.code)")
    }
}
