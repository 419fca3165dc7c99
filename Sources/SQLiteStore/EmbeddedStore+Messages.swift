import Foundation
import GRDB
import GatewayCore
import Synchronization

extension EmbeddedStore {
    /// Columns of `messages m` that `message(_:at:)` decodes, in its order.
    static let messageColumns = "m.id, m.sender, m.to_kind, m.to_id, m.client_msg_id, m.ts, m.body, m.attachments"

    /// `messages.to_kind` values.
    enum RecipientKind: Int64 {
        case user = 0
        case group = 1
    }

    /// Writes `batch` inside the caller's transaction; see `MessageStore.commit`.
    ///
    /// Per message: the message row first, with `ON CONFLICT(sender, client_msg_id) DO NOTHING`
    /// as the dedupe check (a duplicate is looked up only when the insert did nothing), carrying
    /// the sender's seq (so a later duplicate can answer with it); then the inbox entries, which
    /// are collected and inserted at the end, sorted and many rows per statement. Seqs come from
    /// `heads` (see `HeadCounter`): no statement on `inbox_heads` for a user the cache knows,
    /// and one write per touched user per batch.
    ///
    /// A group message meets fanout-on-read (docs/GROUPS.md) only when the group has
    /// fanout-on-read messages (one index probe otherwise): an entry must never land ahead of
    /// the group's earlier messages still waiting for that user, so the sender's waiting ones
    /// are materialized first (`chunk` at a time), and other members who have some waiting are
    /// held back and get this message by fanout-on-read too, in order.
    static func commit(_ batch: [PendingMessage], chunk: Int = 10_000, heads: inout HeadCounter, in db: Database) throws -> [CommitOutcome] {
        let insertMessage = BoundStatement(try db.cachedStatement(sql: """
            INSERT INTO messages(id, conversation, sender, to_kind, to_id, client_msg_id, ts, body, attachments, sender_seq, fanout_on_read)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT(sender, client_msg_id) DO NOTHING
            """))

        var outcomes: [CommitOutcome] = []
        outcomes.reserveCapacity(batch.count)
        var entries = InboxRows()
        var storedMessages: Int64 = 0
        for pending in batch {
            let message = pending.message
            let id = Int64(bitPattern: message.id)
            var fanoutOnRead = pending.isFanoutOnRead
            var held: Set<String> = []
            if case .group(let group) = message.to, let newest = try newestReadFanout(group: group, in: db) {
                if pending.inboxes.contains(where: { $0 != message.from }) {
                    held = try membersBehind(group: group, below: newest, in: db)
                    held.remove(message.from)
                }
                if pending.inboxes.contains(message.from) {
                    // Materialization reads and writes `inbox_heads` itself: the sender's
                    // entries so far must be in the table first.
                    try entries.insert(in: db)
                    try heads.store(message.from, in: db)
                    try materializeAll(user: message.from, group: group, chunk: chunk, heads: heads.cache, in: db)
                }
                if !held.isEmpty { fanoutOnRead = true }
            }
            let senderGetsEntry = pending.inboxes.contains(message.from) && !held.contains(message.from)
            let senderSeq = senderGetsEntry ? try heads.current(message.from, in: db) + 1 : 0
            let (kind, recipient): (RecipientKind, String) =
                switch message.to {
                case .user(let peer): (.user, peer)
                case .group(let group): (.group, group)
                }
            insertMessage.bind(1, id)
            insertMessage.bind(2, message.conversation)
            insertMessage.bind(3, message.from)
            insertMessage.bind(4, kind.rawValue)
            insertMessage.bind(5, recipient)
            insertMessage.bind(6, message.clientMsgID)
            insertMessage.bind(7, message.timestamp)
            insertMessage.bind(8, bytes: message.body)
            insertMessage.bind(9, bytes: message.attachments)
            insertMessage.bind(10, senderSeq)
            insertMessage.bind(11, fanoutOnRead ? 1 : 0)
            try insertMessage.execute(in: db)
            if db.changesCount == 0 {
                guard let original = try original(sender: message.from, clientMsgID: message.clientMsgID, in: db) else {
                    throw DatabaseError(resultCode: .SQLITE_INTERNAL, message: "a message insert did nothing, and there is no duplicate")
                }
                outcomes.append(.duplicate(original.message, senderSeq: original.senderSeq))
                continue
            }
            var seqs: [InboxSeq] = []
            seqs.reserveCapacity(pending.inboxes.count)
            for user in pending.inboxes where !held.contains(user) {
                let seq = try heads.next(user, in: db)
                entries.append(user: user, seq: seq, messageID: id)
                seqs.append(InboxSeq(user: user, seq: seq))
            }
            if fanoutOnRead {
                // Whoever got an entry now is complete up to this message in this group.
                try entries.insert(in: db)
                for entry in seqs {
                    try advanceCursor(user: entry.user, group: recipient, to: id, in: db)
                }
            }
            storedMessages += 1
            outcomes.append(.stored(message, seqs: seqs))
        }
        try entries.insert(in: db)
        try heads.storeAll(in: db)
        if storedMessages > 0 {
            let count = try db.cachedStatement(sql: """
                UPDATE counters SET messages = messages + ?, inbox_entries = inbox_entries + ? WHERE id = 1
                """)
            try count.execute(arguments: [storedMessages, entries.inserted])
        }
        return outcomes
    }

    /// The message `sender` stored under `clientMsgID`, with the sender's inbox seq of it.
    static func original(sender: String, clientMsgID: String, in db: Database) throws -> (message: StoredMessage, senderSeq: Int64)? {
        let statement = try db.cachedStatement(sql: """
            SELECT \(messageColumns), m.sender_seq FROM messages m
            WHERE m.sender = ? AND m.client_msg_id = ?
            """)
        let rows = try Row.fetchCursor(statement, arguments: [sender, clientMsgID])
        guard let row = try rows.next() else { return nil }
        return (try message(row, at: 0), try row.decode(atIndex: 8))
    }

    /// Decodes the `messageColumns` of `row`, starting at column `index`.
    static func message(_ row: Row, at index: Int) throws -> StoredMessage {
        let id: Int64 = try row.decode(atIndex: index)
        let kindValue: Int64 = try row.decode(atIndex: index + 2)
        let recipient: String = try row.decode(atIndex: index + 3)
        let to: Address
        switch RecipientKind(rawValue: kindValue) {
        case .user: to = .user(recipient)
        case .group: to = .group(recipient)
        case nil: throw DatabaseError(resultCode: .SQLITE_CORRUPT, message: "message \(id) has unknown to_kind \(kindValue)")
        }
        return StoredMessage(
            id: UInt64(bitPattern: id),
            from: try row.decode(atIndex: index + 1),
            to: to,
            timestamp: try row.decode(atIndex: index + 5),
            clientMsgID: try row.decode(atIndex: index + 4),
            body: try row.withUnsafeData(atIndex: index + 6) { data in data.map { [UInt8]($0) } ?? [] },
            attachments: try row.withUnsafeData(atIndex: index + 7) { data in data.map { [UInt8]($0) } }
        )
    }
}

/// Inbox rows of one commit, inserted in bulk: sorted by (user, seq), so each user's rows go
/// into the B-tree together, `rowsPerStatement` rows per `INSERT` (one statement per row
/// costs more per row than the b-tree insert itself).
struct InboxRows {
    static let rowsPerStatement = 32
    private var rows: [(user: String, seq: Int64, messageID: Int64)] = []
    /// Rows inserted so far.
    private(set) var inserted: Int64 = 0

    mutating func append(user: String, seq: Int64, messageID: Int64) {
        rows.append((user, seq, messageID))
    }

    /// Inserts the rows appended since the last call.
    mutating func insert(in db: Database) throws {
        if rows.isEmpty { return }
        rows.sort { $0.user == $1.user ? $0.seq < $1.seq : $0.user < $1.user }
        var index = 0
        let full = Self.rowsPerStatement
        if rows.count >= full {
            let statement = BoundStatement(try db.cachedStatement(sql: Self.fullSQL))
            while rows.count - index >= full {
                var parameter: Int32 = 1
                for row in rows[index..<(index + full)] {
                    statement.bind(parameter, row.user)
                    statement.bind(parameter + 1, row.seq)
                    statement.bind(parameter + 2, row.messageID)
                    parameter += 3
                }
                try statement.execute(in: db)
                index += full
            }
        }
        if index < rows.count {
            let single = BoundStatement(try db.cachedStatement(sql: Self.singleSQL))
            for row in rows[index...] {
                single.bind(1, row.user)
                single.bind(2, row.seq)
                single.bind(3, row.messageID)
                try single.execute(in: db)
            }
        }
        inserted += Int64(rows.count)
        rows.removeAll(keepingCapacity: true)
    }

    static let fullSQL = sql(rows: rowsPerStatement)
    static let singleSQL = sql(rows: 1)

    static func sql(rows: Int) -> String {
        "INSERT INTO inbox(user, seq, message_id) VALUES " + Array(repeating: "(?, ?, ?)", count: rows).joined(separator: ", ")
    }
}

/// Inbox heads as one commit batch hands out seqs: read once per user (from `cache`, or the
/// table when the cache does not know the user), counted in memory, and written back once per
/// user, at the end of the batch or before materialization reads the table.
struct HeadCounter {
    /// Per user: the head as of the last seq handed out, and whether the table is behind it.
    private var heads: [String: (seq: Int64, unsaved: Bool)] = [:]
    let cache: HeadCache
    /// What `storeAll` wrote and read: the cache takes it once the transaction committed.
    private(set) var committed: [String: Int64] = [:]

    init(cache: HeadCache) {
        self.cache = cache
    }

    /// `user`'s head: the last seq handed out.
    mutating func current(_ user: String, in db: Database) throws -> Int64 {
        if let known = heads[user] { return known.seq }
        let seq: Int64
        if let cached = cache.head(of: user) {
            seq = cached
        } else {
            let read = try db.cachedStatement(sql: "SELECT seq FROM inbox_heads WHERE user = ?")
            seq = try Int64.fetchOne(read, arguments: [user]) ?? 0
        }
        heads[user] = (seq, false)
        return seq
    }

    /// `user`'s next seq.
    mutating func next(_ user: String, in db: Database) throws -> Int64 {
        let seq = try current(user, in: db) + 1
        heads[user] = (seq, true)
        return seq
    }

    /// Brings `user`'s row up to date and forgets the user, here and in the cache (materialization
    /// is about to move the head in the table).
    mutating func store(_ user: String, in db: Database) throws {
        if let head = heads.removeValue(forKey: user), head.unsaved { try Self.write(user, head.seq, in: db) }
        cache.forget(user)
    }

    /// Brings every row up to date; `committed` holds the heads for the cache.
    mutating func storeAll(in db: Database) throws {
        for (user, head) in heads {
            if head.unsaved { try Self.write(user, head.seq, in: db) }
            committed[user] = head.seq
        }
        heads = [:]
    }

    /// Sets `user`'s row of `inbox_heads` to `seq` (materialization uses it too).
    static func write(_ user: String, _ seq: Int64, in db: Database) throws {
        let set = BoundStatement(try db.cachedStatement(sql: """
            INSERT INTO inbox_heads(user, seq) VALUES (?, ?)
            ON CONFLICT(user) DO UPDATE SET seq = excluded.seq
            """))
        set.bind(1, user)
        set.bind(2, seq)
        try set.execute(in: db)
    }
}

/// The committed inbox heads of recently active users, so that a commit hands out seqs without
/// reading `inbox_heads`.
///
/// It changes only on the writer connection, serialized with every write: a commit merges its
/// heads after SQLite committed (a rolled-back batch leaves it as it was), and whatever else
/// moves a head (materialization) forgets that user first. Past `capacity` users it starts
/// afresh, which bounds it (a user it forgot costs one read of the table).
final class HeadCache: Sendable {
    /// Guards the heads by user.
    private let heads = Mutex<[String: Int64]>([:])
    let capacity: Int

    init(capacity: Int = 100_000) {
        self.capacity = max(1, capacity)
    }

    func head(of user: String) -> Int64? {
        heads.withLock { $0[user] }
    }

    func forget(_ user: String) {
        _ = heads.withLock { $0.removeValue(forKey: user) }
    }

    func merge(_ committed: [String: Int64]) {
        if committed.isEmpty { return }
        heads.withLock { heads in
            if heads.count + committed.count > capacity { heads.removeAll(keepingCapacity: true) }
            heads.merge(committed) { _, new in new }
        }
    }

    var count: Int { heads.withLock { $0.count } }
}
