import Foundation
import GRDB
import GatewayCore

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
    /// Per message: the dedupe lookup, then for each inbox the next seq and the inbox row, then
    /// the message row carrying the sender's seq (so a later duplicate can answer with it).
    /// Every statement is a cached prepared statement. Seqs come from a `HeadCounter`: at most two
    /// statements on `inbox_heads` per user per batch, however many entries the user gets.
    ///
    /// A group message meets fanout-on-read (docs/GROUPS.md) only when the group has
    /// fanout-on-read messages (one index probe otherwise): an entry must never land ahead of
    /// the group's earlier messages still waiting for that user, so the sender's waiting ones
    /// are materialized first (`chunk` at a time), and other members who have some waiting are
    /// held back and get this message by fanout-on-read too, in order.
    static func commit(_ batch: [PendingMessage], chunk: Int = 10_000, in db: Database) throws -> [CommitOutcome] {
        var heads = HeadCounter()
        let insertEntry = try db.cachedStatement(sql: "INSERT INTO inbox(user, seq, message_id) VALUES (?, ?, ?)")
        let insertMessage = try db.cachedStatement(sql: """
            INSERT INTO messages(id, conversation, sender, to_kind, to_id, client_msg_id, ts, body, attachments, sender_seq, fanout_on_read)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """)

        var outcomes: [CommitOutcome] = []
        outcomes.reserveCapacity(batch.count)
        var storedMessages: Int64 = 0
        var storedEntries: Int64 = 0
        for pending in batch {
            let message = pending.message
            if let original = try original(sender: message.from, clientMsgID: message.clientMsgID, in: db) {
                outcomes.append(.duplicate(original.message, senderSeq: original.senderSeq))
                continue
            }
            let id = Int64(bitPattern: message.id)
            var fanoutOnRead = pending.isFanoutOnRead
            var held: Set<String> = []
            if case .group(let group) = message.to, let newest = try newestReadFanout(group: group, in: db) {
                if pending.inboxes.contains(where: { $0 != message.from }) {
                    held = try membersBehind(group: group, below: newest, in: db)
                    held.remove(message.from)
                }
                if pending.inboxes.contains(message.from) {
                    // Materialization reads and writes `inbox_heads` itself.
                    try heads.store(message.from, in: db)
                    try materializeAll(user: message.from, group: group, chunk: chunk, in: db)
                }
                if !held.isEmpty { fanoutOnRead = true }
            }
            var seqs: [InboxSeq] = []
            seqs.reserveCapacity(pending.inboxes.count)
            var senderSeq: Int64 = 0
            for user in pending.inboxes where !held.contains(user) {
                let seq = try heads.next(user, in: db)
                try insertEntry.execute(arguments: [user, seq, id])
                seqs.append(InboxSeq(user: user, seq: seq))
                if user == message.from { senderSeq = seq }
            }
            let (kind, recipient): (RecipientKind, String) =
                switch message.to {
                case .user(let peer): (.user, peer)
                case .group(let group): (.group, group)
                }
            if fanoutOnRead {
                // Whoever got an entry now is complete up to this message in this group.
                for entry in seqs {
                    try advanceCursor(user: entry.user, group: recipient, to: id, in: db)
                }
            }
            try insertMessage.execute(arguments: [
                id, message.conversation, message.from, kind.rawValue, recipient, message.clientMsgID,
                message.timestamp, Data(message.body), message.attachments.map { Data($0) }, senderSeq, fanoutOnRead ? 1 : 0,
            ])
            storedMessages += 1
            storedEntries += Int64(seqs.count)
            outcomes.append(.stored(message, seqs: seqs))
        }
        try heads.storeAll(in: db)
        if storedMessages > 0 {
            let count = try db.cachedStatement(sql: """
                UPDATE counters SET messages = messages + ?, inbox_entries = inbox_entries + ? WHERE id = 1
                """)
            try count.execute(arguments: [storedMessages, storedEntries])
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

/// Inbox heads as one commit batch hands out seqs. A user's first entry of the batch takes its
/// seq with one upsert (`seq + 1 … RETURNING`, as many 1:1 messages need); the following ones
/// are counted in memory and written back once, at the end or before something else reads the
/// table. Holds at most the distinct recipients of one batch, which the committer's `maxBatch`
/// and the group size bound.
struct HeadCounter {
    /// Per user: the head handed out last, and whether the table is behind it.
    private var heads: [String: (seq: Int64, unsaved: Bool)] = [:]

    /// `user`'s next seq.
    mutating func next(_ user: String, in db: Database) throws -> Int64 {
        if let known = heads[user] {
            heads[user] = (known.seq + 1, true)
            return known.seq + 1
        }
        let take = try db.cachedStatement(sql: """
            INSERT INTO inbox_heads(user, seq) VALUES (?, 1)
            ON CONFLICT(user) DO UPDATE SET seq = seq + 1
            RETURNING seq
            """)
        guard let seq = try Int64.fetchOne(take, arguments: [user]) else {
            throw DatabaseError(resultCode: .SQLITE_INTERNAL, message: "inbox_heads upsert returned no seq")
        }
        heads[user] = (seq, false)
        return seq
    }

    /// Brings `user`'s row up to date and forgets it (the next use reads the table again).
    mutating func store(_ user: String, in db: Database) throws {
        guard let head = heads.removeValue(forKey: user), head.unsaved else { return }
        try Self.write(user, head.seq, in: db)
    }

    /// Brings every row up to date.
    mutating func storeAll(in db: Database) throws {
        for (user, head) in heads where head.unsaved { try Self.write(user, head.seq, in: db) }
        heads = [:]
    }

    private static func write(_ user: String, _ seq: Int64, in db: Database) throws {
        let set = try db.cachedStatement(sql: "UPDATE inbox_heads SET seq = ? WHERE user = ?")
        try set.execute(arguments: [seq, user])
    }
}
