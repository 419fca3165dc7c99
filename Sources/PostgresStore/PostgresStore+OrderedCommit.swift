import GatewayCore
import Logging
import NIOCore
import PostgresNIO

/// The arguments of one `chat_commit` call: the batch as column arrays (one round trip, however
/// many messages).
struct CommitArguments: Sendable {
    var ids: [Int64] = [], conversations: [String] = [], senders: [String] = [], kinds: [Int16] = []
    var recipients: [String] = [], clientMsgIDs: [String] = [], timestamps: [Int64] = []
    var bodies: [ByteBuffer] = [], attachments: [ByteBuffer] = [], hasAttachments: [Bool] = []
    var entryMessages: [Int32] = [], entryUsers: [String] = []
    let count: Int

    init(_ batch: [PendingMessage]) {
        count = batch.count
        for (index, pending) in batch.enumerated() {
            let message = pending.message
            ids.append(Int64(bitPattern: message.id))
            conversations.append(message.conversation)
            senders.append(message.from)
            switch message.to {
            case .user(let peer):
                kinds.append(PostgresStore.RecipientKind.user.rawValue)
                recipients.append(peer)
            case .group(let group):
                kinds.append(PostgresStore.RecipientKind.group.rawValue)
                recipients.append(group)
            }
            clientMsgIDs.append(message.clientMsgID)
            timestamps.append(message.timestamp)
            bodies.append(ByteBuffer(bytes: message.body))
            attachments.append(ByteBuffer(bytes: message.attachments ?? []))
            hasAttachments.append(message.attachments != nil)
            // Fanout-on-read is not implemented on PostgreSQL: its members get their entries
            // now, like write fanout (docs/SCALING.md).
            for user in pending.inboxes + pending.liveOnly {
                entryMessages.append(Int32(index + 1))
                entryUsers.append(user)
            }
        }
    }

    /// The `chat_commit` call; with `checkOrder` it refuses (SQLSTATE `CG001`) a batch that would
    /// put an id at or below an inbox's last one into that inbox.
    func query(checkOrder: Bool) -> PostgresQuery {
        """
        SELECT r_msg, r_user, r_seq FROM chat_commit(\(ids), \(conversations), \(senders), \(kinds), \(recipients), \
        \(clientMsgIDs), \(timestamps), \(bodies), \(attachments), \(hasAttachments), \(entryMessages), \(entryUsers), \(checkOrder))
        """
    }

    /// Runs the call through `client` (its own transaction) and collects its answer.
    func run(on client: PostgresClient, checkOrder: Bool, logger: Logger) async throws -> CommitRows {
        try await collect(client.query(query(checkOrder: checkOrder), logger: logger))
    }

    /// Runs the call on `connection` (inside the caller's transaction) and collects its answer.
    func run(on connection: PostgresConnection, checkOrder: Bool, logger: Logger) async throws -> CommitRows {
        try await collect(connection.query(query(checkOrder: checkOrder), logger: logger))
    }

    private func collect(_ rows: PostgresRowSequence) async throws -> CommitRows {
        var result = CommitRows(stored: [Bool](repeating: false, count: count), seqs: Array(repeating: [:], count: count))
        for try await (index, user, seq) in rows.decode((Int32, String?, Int64?).self) {
            let position = Int(index) - 1
            guard (0..<count).contains(position) else { continue }
            if let user, let seq {
                result.seqs[position][user] = seq
            } else {
                result.stored[position] = true
            }
        }
        return result
    }
}

/// What `chat_commit` answered: which messages were stored (the others are duplicates) and
/// the seq of each of their entries, by user.
struct CommitRows: Sendable {
    var stored: [Bool]
    var seqs: [[String: Int64]]
}

extension PostgresStore: OrderedCommitStore {
    /// The SQLSTATE `chat_commit` raises when it refuses a batch for inbox order; its DETAIL is
    /// the highest id the batch's inboxes hold.
    static let inboxOrderState = "CG001"

    public func commitInOrder(
        _ batch: [PendingMessage], restamp: (@Sendable (_ floor: UInt64) -> [PendingMessage])?
    ) async throws -> (batch: [PendingMessage], outcomes: [CommitOutcome]) {
        if batch.isEmpty { return (batch, []) }
        guard let restamp else {
            // One statement, one round trip: the function's implicit transaction.
            let arguments = CommitArguments(batch)
            let rows = try await access { [client, logger] in
                try await arguments.run(on: client, checkOrder: true, logger: logger)
            }
            return (batch, try await outcomes(of: batch, rows))
        }
        // A retry: lock the batch's head rows first and read the floor under those locks, so
        // that ids above it cannot be overtaken before this commit.
        let (committed, rows) = try await access { [client, logger] in
            try await client.withTransaction(logger: logger) { connection in
                let users = Array(Set(batch.flatMap { $0.inboxes + $0.liveOnly }))
                // Locked in user order, as `chat_commit` locks them: no deadlock with it.
                let floorRows = try await connection.query(
                    """
                    SELECT coalesce(max(last_id), 0) FROM (
                        SELECT last_id FROM inbox_heads WHERE user_id = ANY(\(users)) ORDER BY user_id FOR UPDATE
                    ) AS locked
                    """, logger: logger)
                var floor: Int64 = 0
                for try await value in floorRows.decode(Int64.self) { floor = value }
                let restamped = restamp(UInt64(max(0, floor)))
                let rows = try await CommitArguments(restamped).run(on: connection, checkOrder: true, logger: logger)
                return (restamped, rows)
            }
        }
        return (committed, try await outcomes(of: committed, rows))
    }

    /// The order refusal of `chat_commit` as an `InboxOrderConflict`, or nil for any other error.
    static func orderConflict(_ error: PSQLError) -> InboxOrderConflict? {
        guard error.code == .server, error.serverInfo?[.sqlState] == inboxOrderState else { return nil }
        let floor = error.serverInfo?[.detail].flatMap { Int64($0) } ?? 0
        return InboxOrderConflict(floor: UInt64(max(0, floor)))
    }

    /// Inbox order (v61): `inbox_heads.last_id` is the highest message id in each inbox, and
    /// `chat_commit` gains a last argument, `p_check_order`: when true, a batch that would append
    /// an id at or below `last_id` to one of its inboxes is refused with SQLSTATE `CG001` (DETAIL:
    /// the highest `last_id` of the batch's inboxes) and stores nothing. The check sits in the
    /// head upsert: its `WHERE` leaves such a head row unchanged (and locked), so the number of
    /// heads it returned tells. `first_id` carries each user's smallest id of the batch into
    /// that `WHERE` (`excluded` has only table columns). The 12-argument function stays, as a
    /// call without the check, for nodes of the previous release during a rolling upgrade.
    static let inboxOrderMigration = Migration(version: 61, name: "inbox-id-order", statements: [
        "ALTER TABLE inbox_heads ADD COLUMN last_id bigint NOT NULL DEFAULT 0, ADD COLUMN first_id bigint NOT NULL DEFAULT 0",
        "UPDATE inbox_heads h SET last_id = i.message_id FROM inbox i WHERE i.user_id = h.user_id AND i.seq = h.seq",
        orderedCommitFunction(replacing: false, writesSenderSeq: true),
        """
        CREATE OR REPLACE FUNCTION chat_commit(
            p_ids bigint[], p_conversations text[], p_senders text[], p_to_kinds smallint[], p_to_ids text[],
            p_client_msg_ids text[], p_ts bigint[], p_bodies bytea[], p_attachments bytea[], p_has_attachments boolean[],
            p_entry_msg integer[], p_entry_users text[])
        RETURNS TABLE (r_msg integer, r_user text, r_seq bigint)
        LANGUAGE sql AS $$
            SELECT * FROM chat_commit(p_ids, p_conversations, p_senders, p_to_kinds, p_to_ids, p_client_msg_ids, p_ts,
                                      p_bodies, p_attachments, p_has_attachments, p_entry_msg, p_entry_users, false)
        $$
        """,
    ])

    /// Sender seqs read from the inbox (v62): `chat_commit` no longer writes each message row a
    /// second time (`UPDATE messages SET sender_seq`, most often not a HOT update, so a new row
    /// version and an entry in each of its three indexes per message). The sender's seq of a
    /// message is its entry in the sender's own inbox, which `originals` reads for a duplicate
    /// (rows committed before v62 still carry `sender_seq`).
    static let senderSeqFromInboxMigration = Migration(version: 62, name: "sender-seq-from-inbox", statements: [
        orderedCommitFunction(replacing: true, writesSenderSeq: false)
    ])

    /// `chat_commit` of v1 (see `commitFunction`) with the inbox order check; until v62 it also
    /// copied each sender's seq into the message row.
    static func orderedCommitFunction(replacing: Bool, writesSenderSeq: Bool) -> String {
        let senderSeq = """
                    UPDATE messages m SET sender_seq = c.seq
                    FROM unnest(v_msgs, v_users, v_seqs) AS c(msg, user_id, seq)
                    WHERE m.id = p_ids[c.msg] AND c.user_id = p_senders[c.msg];

            """
        return """
        \(replacing ? "CREATE OR REPLACE" : "CREATE") FUNCTION chat_commit(
            p_ids bigint[], p_conversations text[], p_senders text[], p_to_kinds smallint[], p_to_ids text[],
            p_client_msg_ids text[], p_ts bigint[], p_bodies bytea[], p_attachments bytea[], p_has_attachments boolean[],
            p_entry_msg integer[], p_entry_users text[], p_check_order boolean)
        RETURNS TABLE (r_msg integer, r_user text, r_seq bigint)
        LANGUAGE plpgsql AS $$
        DECLARE
            v_stored integer[];
            v_msgs integer[];
            v_users text[];
            v_seqs bigint[];
            v_heads bigint;
            v_inboxes bigint;
            v_floor bigint;
        BEGIN
            WITH batch AS (
                SELECT * FROM unnest(p_ids, p_conversations, p_senders, p_to_kinds, p_to_ids, p_client_msg_ids, p_ts,
                                     p_bodies, p_attachments, p_has_attachments)
                    WITH ORDINALITY AS b(id, conversation, sender, to_kind, to_id, client_msg_id, ts, body, attachments, has_attachments, n)
            ), inserted AS (
                INSERT INTO messages(id, conversation, sender, to_kind, to_id, client_msg_id, ts, body, attachments)
                SELECT id, conversation, sender, to_kind, to_id, client_msg_id, ts, body,
                       CASE WHEN has_attachments THEN attachments END
                FROM batch ORDER BY n
                ON CONFLICT (sender, client_msg_id) DO NOTHING
                RETURNING id
            )
            SELECT coalesce(array_agg(batch.n::integer), '{}') INTO v_stored
            FROM inserted JOIN batch ON batch.id = inserted.id;

            IF cardinality(v_stored) = 0 THEN
                RETURN;
            END IF;

            WITH entries AS (
                SELECT e.msg, e.user_id, e.k
                FROM unnest(p_entry_msg, p_entry_users) WITH ORDINALITY AS e(msg, user_id, k)
                JOIN unnest(v_stored) AS s(msg) ON s.msg = e.msg
            ), counts AS (
                SELECT user_id, count(*) AS n, min(p_ids[msg]) AS first_id, max(p_ids[msg]) AS last_id
                FROM entries GROUP BY user_id
            ), heads AS (
                INSERT INTO inbox_heads AS h(user_id, seq, last_id, first_id)
                SELECT user_id, n, last_id, first_id FROM counts ORDER BY user_id
                ON CONFLICT (user_id) DO UPDATE
                    SET seq = h.seq + excluded.seq, last_id = greatest(h.last_id, excluded.last_id), first_id = excluded.first_id
                    WHERE NOT p_check_order OR h.last_id < excluded.first_id
                RETURNING h.user_id, h.seq
            ), numbered AS (
                SELECT entries.msg, entries.user_id,
                       heads.seq - counts.n + row_number() OVER (PARTITION BY entries.user_id ORDER BY entries.k) AS seq
                FROM entries JOIN counts USING (user_id) JOIN heads USING (user_id)
            )
            SELECT coalesce(array_agg(msg), '{}'), coalesce(array_agg(user_id), '{}'), coalesce(array_agg(seq), '{}'),
                   (SELECT count(*) FROM heads), (SELECT count(*) FROM counts)
            INTO v_msgs, v_users, v_seqs, v_heads, v_inboxes
            FROM numbered;

            IF v_heads < v_inboxes THEN
                -- A head the upsert left alone: that inbox already holds a later id. The rows
                -- are locked by this transaction, so this reads their current ids.
                SELECT max(h.last_id) INTO v_floor FROM inbox_heads h WHERE h.user_id = ANY(p_entry_users);
                RAISE EXCEPTION 'inbox order: an inbox of the batch already holds a later message'
                    USING ERRCODE = 'CG001', DETAIL = v_floor::text;
            END IF;

            INSERT INTO inbox(user_id, seq, message_id)
            SELECT c.user_id, c.seq, p_ids[c.msg] FROM unnest(v_msgs, v_users, v_seqs) AS c(msg, user_id, seq)
            ORDER BY c.user_id, c.seq;

        \(writesSenderSeq ? senderSeq : "")    INSERT INTO counters AS t(shard, messages, inbox_entries)
            VALUES (pg_backend_pid() % 16, cardinality(v_stored), cardinality(v_msgs))
            ON CONFLICT (shard) DO UPDATE SET messages = t.messages + excluded.messages,
                                              inbox_entries = t.inbox_entries + excluded.inbox_entries;

            RETURN QUERY
                SELECT c.msg, c.user_id, c.seq FROM unnest(v_msgs, v_users, v_seqs) AS c(msg, user_id, seq)
                UNION ALL
                SELECT s.msg, NULL::text, NULL::bigint FROM unnest(v_stored) AS s(msg);
        END;
        $$
        """
    }
}

extension LeaseGuardedMessageStore: OrderedCommitStore {
    /// The guarded store's `commitInOrder` while the lease is valid (around a store that is not
    /// an `OrderedCommitStore`: its plain commit).
    public func commitInOrder(
        _ batch: [PendingMessage], restamp: (@Sendable (_ floor: UInt64) -> [PendingMessage])?
    ) async throws -> (batch: [PendingMessage], outcomes: [CommitOutcome]) {
        guard let ordered = store as? any OrderedCommitStore else { return (batch, try await commit(batch)) }
        guard lease.isValid else {
            throw GatewayError.unavailable("this node's cluster lease has expired; reconnect through /v1/discover")
        }
        return try await ordered.commitInOrder(batch, restamp: restamp)
    }
}
