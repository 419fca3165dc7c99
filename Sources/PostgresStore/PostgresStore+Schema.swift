import Logging
import PostgresNIO

extension PostgresStore {
    /// One schema change: statements run in order, in the migration's transaction.
    struct Migration: Sendable {
        let version: Int
        let name: String
        let statements: [String]
    }

    /// The key of the advisory lock migrations hold (any constant; "chatgate" in ASCII).
    static let migrationLockKey: Int64 = 0x6368_6174_6761_7465

    /// Applies the migrations the database lacks, each in its own transaction, under a
    /// transaction-level advisory lock: nodes starting at once apply each migration once (the
    /// others wait for the lock, then find it applied).
    static func migrate(_ client: PostgresClient, logger: Logger) async throws {
        try await client.withTransaction(logger: logger) { connection in
            try await connection.query("SELECT pg_advisory_xact_lock(\(migrationLockKey))", logger: logger)
            try await connection.query(
                """
                CREATE TABLE IF NOT EXISTS schema_migrations (
                    version integer PRIMARY KEY,
                    name text NOT NULL,
                    applied_at timestamptz NOT NULL DEFAULT now()
                )
                """, logger: logger)
            var applied: Set<Int> = []
            for try await version in try await connection.query("SELECT version FROM schema_migrations", logger: logger).decode(Int32.self) {
                applied.insert(Int(version))
            }
            for migration in migrations where !applied.contains(migration.version) {
                for statement in migration.statements {
                    try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger)
                }
                try await connection.query(
                    "INSERT INTO schema_migrations(version, name) VALUES (\(Int32(migration.version)), \(migration.name))", logger: logger)
                logger.info("store migration applied", metadata: ["gateway.store.migration": "\(migration.version) \(migration.name)"])
            }
        }
    }

    /// The schema, one migration per change; a migration never changes once released.
    ///
    /// - `messages`: one row per stored message; `UNIQUE(sender, client_msg_id)` is the dedupe
    ///   record; `sender_seq` is the sender's inbox seq of it (0 when none); `to_kind` 0 for a
    ///   user, 1 for a group. Bodies are the JSON text as `bytea` (spliced into frames as is).
    /// - `inbox`: one row per (user, seq); `inbox_heads`: each user's highest seq, whose row lock
    ///   serializes the commits that give that user seqs, on every node.
    /// - `counters`: totals for `statistics()`, in 16 rows (a commit adds to the row of its
    ///   backend, so concurrent commits rarely wait on the same row).
    /// - `chat_groups`, `group_members` (`position` keeps the order of joining), `read_positions`.
    /// - `cluster_nodes` (v2): one row per worker id leased by a node (`NodeLease`).
    /// - v3: push targets and queue, media metadata (`pushAndMediaMigration`).
    /// - `chat_commit(...)`: a whole commit batch in one statement, one round trip (see
    ///   `PostgresStore.commit`).
    /// - v60: `inbox_heads.last_id` and the inbox order check of `chat_commit`
    ///   (`inboxOrderMigration`).
    static let migrations: [Migration] = [
        Migration(version: 1, name: "messages-inboxes-groups-receipts", statements: [
            """
            CREATE TABLE messages (
                id bigint PRIMARY KEY,
                conversation text NOT NULL,
                sender text NOT NULL,
                to_kind smallint NOT NULL,
                to_id text NOT NULL,
                client_msg_id text NOT NULL,
                ts bigint NOT NULL,
                body bytea NOT NULL,
                attachments bytea,
                sender_seq bigint NOT NULL DEFAULT 0,
                UNIQUE (sender, client_msg_id)
            )
            """,
            "CREATE INDEX messages_by_conversation ON messages(conversation, id)",
            """
            CREATE TABLE inbox (
                user_id text NOT NULL,
                seq bigint NOT NULL,
                message_id bigint NOT NULL,
                PRIMARY KEY (user_id, seq)
            )
            """,
            "CREATE TABLE inbox_heads (user_id text PRIMARY KEY, seq bigint NOT NULL)",
            """
            CREATE TABLE counters (
                shard integer PRIMARY KEY,
                messages bigint NOT NULL,
                inbox_entries bigint NOT NULL
            )
            """,
            """
            CREATE TABLE chat_groups (
                id text PRIMARY KEY,
                name text NOT NULL,
                owner text NOT NULL,
                created_at bigint NOT NULL
            )
            """,
            """
            CREATE TABLE group_members (
                group_id text NOT NULL REFERENCES chat_groups(id) ON DELETE CASCADE,
                user_id text NOT NULL,
                position bigint NOT NULL,
                PRIMARY KEY (group_id, user_id)
            )
            """,
            "CREATE INDEX group_members_by_user ON group_members(user_id, group_id)",
            """
            CREATE TABLE read_positions (
                conversation text NOT NULL,
                user_id text NOT NULL,
                up_to bigint NOT NULL,
                PRIMARY KEY (conversation, user_id)
            )
            """,
            commitFunction,
        ]),
        // The nodes of a cluster and their leases (see `NodeLease`).
        Migration(version: 2, name: "cluster-nodes", statements: [
            """
            CREATE TABLE cluster_nodes (
                worker_id integer PRIMARY KEY CHECK (worker_id BETWEEN 0 AND 1023),
                node_id text NOT NULL,
                instance text NOT NULL,
                ws_url text NOT NULL,
                longpoll_url text NOT NULL,
                sessions integer NOT NULL DEFAULT 0,
                max_sessions integer NOT NULL DEFAULT 1,
                draining boolean NOT NULL DEFAULT false,
                lease_until bigint NOT NULL,
                renewed_at bigint NOT NULL
            )
            """
        ]),
        // Push targets, the push queue and media metadata (PostgresStore+PushMediaSchema.swift).
        pushAndMediaMigration,
        clusterBusMigration,  // cluster bus (PostgresClusterBus.swift); version 50 leaves room for other migrations
        longPollSessionsMigration,  // long-poll sessions that outlive their node (PostgresClusterBus+LongPoll.swift)
        inboxOrderMigration,  // inbox id order across nodes (PostgresStore+OrderedCommit.swift)
        senderSeqFromInboxMigration,  // one write per message row (PostgresStore+OrderedCommit.swift)
    ]

    /// The commit of a batch, in one statement (so one round trip and one transaction when
    /// called outside a transaction):
    ///
    /// 1. the messages, in batch order, `ON CONFLICT (sender, client_msg_id) DO NOTHING`: a
    ///    duplicate (earlier, or earlier in the batch) is not inserted; a concurrent insert of
    ///    the same key on another node makes this one wait for its outcome;
    /// 2. the inbox heads of the users of the stored messages' entries, moved forward by their
    ///    entry count in one upsert sorted by user (so concurrent commits lock head rows in the
    ///    same order and cannot deadlock on them); the row lock holds other commits for these
    ///    users until this one commits, hence contiguous seqs across nodes;
    /// 3. the inbox rows (sorted by user and seq), the senders' seqs, the counters.
    ///
    /// Returns a row per entry (message index from 1, user, seq) and a row (index, NULL, NULL)
    /// per stored message.
    static let commitFunction = """
        CREATE FUNCTION chat_commit(
            p_ids bigint[], p_conversations text[], p_senders text[], p_to_kinds smallint[], p_to_ids text[],
            p_client_msg_ids text[], p_ts bigint[], p_bodies bytea[], p_attachments bytea[], p_has_attachments boolean[],
            p_entry_msg integer[], p_entry_users text[])
        RETURNS TABLE (r_msg integer, r_user text, r_seq bigint)
        LANGUAGE plpgsql AS $$
        DECLARE
            v_stored integer[];
            v_msgs integer[];
            v_users text[];
            v_seqs bigint[];
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
                SELECT user_id, count(*) AS n FROM entries GROUP BY user_id
            ), heads AS (
                INSERT INTO inbox_heads AS h(user_id, seq)
                SELECT user_id, n FROM counts ORDER BY user_id
                ON CONFLICT (user_id) DO UPDATE SET seq = h.seq + excluded.seq
                RETURNING h.user_id, h.seq
            ), numbered AS (
                SELECT entries.msg, entries.user_id,
                       heads.seq - counts.n + row_number() OVER (PARTITION BY entries.user_id ORDER BY entries.k) AS seq
                FROM entries JOIN counts USING (user_id) JOIN heads USING (user_id)
            )
            SELECT coalesce(array_agg(msg), '{}'), coalesce(array_agg(user_id), '{}'), coalesce(array_agg(seq), '{}')
            INTO v_msgs, v_users, v_seqs
            FROM numbered;

            INSERT INTO inbox(user_id, seq, message_id)
            SELECT c.user_id, c.seq, p_ids[c.msg] FROM unnest(v_msgs, v_users, v_seqs) AS c(msg, user_id, seq)
            ORDER BY c.user_id, c.seq;

            UPDATE messages m SET sender_seq = c.seq
            FROM unnest(v_msgs, v_users, v_seqs) AS c(msg, user_id, seq)
            WHERE m.id = p_ids[c.msg] AND c.user_id = p_senders[c.msg];

            INSERT INTO counters AS t(shard, messages, inbox_entries)
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
